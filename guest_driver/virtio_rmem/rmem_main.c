// SPDX-License-Identifier: GPL-2.0
/*
 * virtio_rmem: the driver of the virtio-rmem device (device ID 0xbf00,
 * docs/virtio-rmem.md), binding over any virtio transport that offers
 * VIRTIO_F_VERSION_1 and shared memory regions (virtio-mmio does).
 *
 * Probe (spec 6): negotiate the device's feature bits (LEND_DONATE,
 * RECLAIM_REVOKE) and VERSION_1; read the configuration once; find shared
 * memory region VIRTIO_RMEM_SHM_BUFFERS and reserve it; set up requestq
 * and eventq; DRIVER_OK; fill eventq; ask every heap's GET_HEAP once
 * (names and flags for the dma-buf heaps and for release); register
 * /dev/rmem (the first device) or /dev/rmem<N>, and the dma-buf heaps
 * where the kernel lets a module add them.
 *
 * Remove: /dev/rmem and the heaps go first, then every buffer becomes
 * unusable and its user mappings are zapped (spec 5: stop using a range
 * before access ends), then the device is reset (spec 7.9: to the device,
 * the VM forgot every buffer, so they are revoked, zeroed and returned) and
 * every request still in flight fails with ENODEV. Open files and dma-bufs
 * outlive the device: they hold a reference to its struct rmem_dev, and
 * every later operation on them fails with ENODEV.
 *
 * A broken device (no answer within request_timeout_ms, DEVICE_NEEDS_RESET,
 * or a protocol violation) is treated as removed except that it stays
 * bound: requests fail with ENODEV, every buffer is unusable. Unbinding and
 * binding the driver again resets it.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ioport.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>

#include "rmem.h"
#include "rmem_compat.h"

unsigned int rmem_request_timeout_ms = 30000;
module_param_named(request_timeout_ms, rmem_request_timeout_ms, uint, 0644);
MODULE_PARM_DESC(request_timeout_ms,
		 "how long a request may take before the device is declared broken (ms, >= 100)");

bool rmem_raw_requests;
module_param_named(raw_requests, rmem_raw_requests, bool, 0600);
MODULE_PARM_DESC(raw_requests,
		 "TEST ONLY: allow RMEM_IOC_RAW (malformed requests) to CAP_SYS_ADMIN");

static void rmem_dev_release(struct kref *ref)
{
	struct rmem_dev *rdev = container_of(ref, struct rmem_dev, ref);

	kfree(rdev->event_bufs);
	mutex_destroy(&rdev->lock);
	mutex_destroy(&rdev->read_lock);
	kvfree(rdev);
}

void rmem_dev_get(struct rmem_dev *rdev)
{
	kref_get(&rdev->ref);
}

void rmem_dev_put(struct rmem_dev *rdev)
{
	kref_put(&rdev->ref, rmem_dev_release);
}

/* Makes every buffer unusable; process context. */
static void rmem_broken_work(struct work_struct *work)
{
	struct rmem_dev *rdev = container_of(work, struct rmem_dev, broken_work);

	rmem_bufs_kill_all(rdev);
	/* Only now, with every mapping zapped, do event readers hear of it. */
	WRITE_ONCE(rdev->events_ended, true);
	wake_up_interruptible_all(&rdev->evq_wait);
}

/*
 * The device cannot be trusted to answer any more (any context): fails
 * every waiting request, refuses new ones, and has every buffer made
 * unusable.
 */
void rmem_dev_set_broken(struct rmem_dev *rdev, const char *why)
{
	if (!rmem_req_fail_all(rdev, -ENODEV))
		return; /* removed, or broken already */
	pr_err("%s: %s: the device is broken; no buffer is usable until the driver is bound again\n",
	       rdev->name, why);
	schedule_work(&rdev->broken_work);
}

/* Interrupt context. The configuration itself never changes (spec 4). */
static void rmem_config_changed(struct virtio_device *vdev)
{
	struct rmem_dev *rdev = vdev->priv;

	if (vdev->config->get_status(vdev) & VIRTIO_CONFIG_S_NEEDS_RESET)
		rmem_dev_set_broken(rdev, "the device needs a reset");
	else
		pr_warn_ratelimited("%s: configuration change ignored (it must not change)\n",
				    rdev->name);
}

static void rmem_read_config(struct rmem_dev *rdev)
{
	struct virtio_device *vdev = rdev->vdev;

	virtio_cread_le(vdev, struct virtio_rmem_config, vm_id, &rdev->vm_id);
	virtio_cread_le(vdev, struct virtio_rmem_config, num_heaps,
			&rdev->num_heaps);
	virtio_cread_le(vdev, struct virtio_rmem_config, num_peers,
			&rdev->num_peers);
	virtio_cread_le(vdev, struct virtio_rmem_config, max_receivers,
			&rdev->max_receivers);
	virtio_cread_le(vdev, struct virtio_rmem_config, quota_bytes,
			&rdev->quota_bytes);
	if (!rdev->max_receivers)
		dev_warn(&vdev->dev, "max_receivers is 0 (must be >= 1): no SHARE or LEND\n");
	if (virtio_has_feature(vdev, VIRTIO_RMEM_F_LEND_DONATE))
		rdev->features |= RMEM_FEATURE_LEND_DONATE;
	if (virtio_has_feature(vdev, VIRTIO_RMEM_F_RECLAIM_REVOKE))
		rdev->features |= RMEM_FEATURE_RECLAIM_REVOKE;
}

/*
 * Finds the buffers' shared memory region and reserves it, so that no other
 * driver claims the range. Its pages are reached only through buffers
 * (rmem_buf.c says how). A device without the region still works for
 * device-only buffers.
 */
static int rmem_find_shm(struct rmem_dev *rdev)
{
	struct virtio_device *vdev = rdev->vdev;
	struct virtio_shm_region region = {};
	u64 end;

	if (!virtio_get_shm_region(vdev, &region, VIRTIO_RMEM_SHM_BUFFERS)) {
		dev_warn(&vdev->dev, "no shared memory region %u: no buffer can be CPU-mapped\n",
			 VIRTIO_RMEM_SHM_BUFFERS);
		return 0;
	}
	if (!region.len || !PAGE_ALIGNED(region.addr) ||
	    !PAGE_ALIGNED(region.len) ||
	    check_add_overflow(region.addr, region.len, &end) ||
	    end - 1 > PHYS_ADDR_MAX) {
		dev_err(&vdev->dev, "shared memory region 0x%llx+0x%llx is not page aligned or overflows\n",
			region.addr, region.len);
		return -EINVAL;
	}
	if (!devm_request_mem_region(&vdev->dev, region.addr, region.len,
				     dev_name(&vdev->dev))) {
		dev_err(&vdev->dev, "shared memory region 0x%llx+0x%llx is in use\n",
			region.addr, region.len);
		return -EBUSY;
	}
	rdev->shm_addr = region.addr;
	rdev->shm_len = region.len;
	return 0;
}

static int rmem_setup_vqs(struct rmem_dev *rdev)
{
	struct virtqueue *vqs[VIRTIO_RMEM_NUM_VQS];
	vq_callback_t *callbacks[VIRTIO_RMEM_NUM_VQS];
	const char *names[VIRTIO_RMEM_NUM_VQS];
	int err;

	callbacks[VIRTIO_RMEM_VQ_REQUEST] = rmem_req_done;
	names[VIRTIO_RMEM_VQ_REQUEST] = "requestq";
	callbacks[VIRTIO_RMEM_VQ_EVENT] = rmem_event_done;
	names[VIRTIO_RMEM_VQ_EVENT] = "eventq";
	err = rmem_find_vqs(rdev->vdev, VIRTIO_RMEM_NUM_VQS, vqs, callbacks,
			    names);
	if (err)
		return err;
	rdev->req_vq = vqs[VIRTIO_RMEM_VQ_REQUEST];
	rdev->event_vq = vqs[VIRTIO_RMEM_VQ_EVENT];
	return 0;
}

/* Copies a NUL-padded wire name into a C string of @size bytes. */
static void rmem_copy_name(char *dst, size_t size, const u8 *src)
{
	size_t len = strnlen((const char *)src, VIRTIO_RMEM_NAME_SIZE);

	len = min(len, size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Asks each heap's GET_HEAP once; a failure only leaves a heap unnamed. */
static void rmem_discover_heaps(struct rmem_dev *rdev)
{
	struct virtio_rmem_req_get_heap req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_GET_HEAP),
	};
	struct virtio_rmem_resp_get_heap resp;
	u32 i, n = min_t(u32, rdev->num_heaps, RMEM_MAX_HEAPS_CACHED);
	int err;

	for (i = 0; i < n; i++) {
		req.heap = cpu_to_le32(i);
		err = rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
		if (err == -ENODEV || err == -ETIMEDOUT)
			return;
		if (err) {
			dev_warn(&rdev->vdev->dev, "GET_HEAP %u: %d\n", i, err);
			continue;
		}
		rmem_copy_name(rdev->heaps[i].name, sizeof(rdev->heaps[i].name),
			       resp.name);
		rdev->heaps[i].flags = le32_to_cpu(resp.flags);
		rdev->heaps[i].valid = true;
	}
}

/* Resets the device and takes both rings apart; the device is gone after. */
static void rmem_stop_device(struct rmem_dev *rdev)
{
	/* No queue call may race with the reset (virtio_reset_device()). */
	rmem_req_fail_all(rdev, -ENODEV);
	rmem_events_stop(rdev);
	virtio_reset_device(rdev->vdev);
	rmem_req_teardown(rdev);
	rmem_events_teardown(rdev);
	rdev->vdev->config->del_vqs(rdev->vdev);
	/* No callback can schedule them again now. */
	cancel_work_sync(&rdev->event_work);
	cancel_work_sync(&rdev->broken_work);
	cancel_work_sync(&rdev->release_work);
}

static int rmem_validate(struct virtio_device *vdev)
{
	if (!virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
		dev_err(&vdev->dev, "the device does not offer VIRTIO_F_VERSION_1\n");
		return -ENODEV;
	}
	if (!vdev->config->get) {
		dev_err(&vdev->dev, "the transport has no configuration space\n");
		return -ENODEV;
	}
	return 0;
}

static int rmem_probe(struct virtio_device *vdev)
{
	struct rmem_dev *rdev;
	int err;

	rdev = kvzalloc(sizeof(*rdev), GFP_KERNEL);
	if (!rdev)
		return -ENOMEM;
	kref_init(&rdev->ref);
	rdev->vdev = vdev;
	rdev->index = -1;
	strscpy(rdev->name, dev_name(&vdev->dev), sizeof(rdev->name));
	spin_lock_init(&rdev->req_lock);
	INIT_LIST_HEAD(&rdev->inflight);
	init_waitqueue_head(&rdev->req_space);
	spin_lock_init(&rdev->event_lock);
	INIT_WORK(&rdev->event_work, rmem_event_work);
	spin_lock_init(&rdev->evq_lock);
	init_waitqueue_head(&rdev->evq_wait);
	mutex_init(&rdev->read_lock);
	mutex_init(&rdev->lock);
	hash_init(rdev->owned);
	hash_init(rdev->borrowed);
	INIT_LIST_HEAD(&rdev->release_list);
	INIT_WORK(&rdev->release_work, rmem_release_work);
	INIT_WORK(&rdev->broken_work, rmem_broken_work);
	vdev->priv = rdev;

	rmem_read_config(rdev);
	err = rmem_find_shm(rdev);
	if (err)
		goto err_free;
	err = rmem_setup_vqs(rdev);
	if (err)
		goto err_free;
	virtio_device_ready(vdev);
	err = rmem_events_start(rdev);
	if (err)
		goto err_stop;
	rmem_discover_heaps(rdev);
	err = rmem_cdev_register(rdev);
	if (err)
		goto err_stop;
	rmem_heaps_register(rdev);
	dev_info(&vdev->dev, "/dev/%s: vm %u, %u heap(s), %u peer(s), features 0x%llx, region 0x%llx bytes\n",
		 rdev->name, rdev->vm_id, rdev->num_heaps, rdev->num_peers,
		 rdev->features, rdev->shm_len);
	return 0;

err_stop:
	rmem_stop_device(rdev);
err_free:
	vdev->priv = NULL;
	rdev->vdev = NULL;
	rmem_dev_put(rdev);
	return err;
}

static void rmem_remove(struct virtio_device *vdev)
{
	struct rmem_dev *rdev = vdev->priv;

	rmem_heaps_unregister(rdev);
	rmem_cdev_unregister(rdev);
	mutex_lock(&rdev->lock);
	rdev->removed = true;
	mutex_unlock(&rdev->lock);
	rmem_bufs_kill_all(rdev);
	rmem_req_fail_all(rdev, -ENODEV);
	wake_up_interruptible_all(&rdev->evq_wait);
	rmem_stop_device(rdev);
	rmem_bufs_teardown(rdev);
	dev_info(&vdev->dev, "/dev/%s removed\n", rdev->name);
	vdev->priv = NULL;
	rdev->vdev = NULL;
	rmem_dev_put(rdev);
}

static const struct virtio_device_id rmem_id_table[] = {
	{ VIRTIO_ID_RMEM, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, rmem_id_table);

static unsigned int rmem_features[] = {
	VIRTIO_RMEM_F_LEND_DONATE,
	VIRTIO_RMEM_F_RECLAIM_REVOKE,
};

static struct virtio_driver rmem_driver = {
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.id_table = rmem_id_table,
	.feature_table = rmem_features,
	.feature_table_size = ARRAY_SIZE(rmem_features),
	.validate = rmem_validate,
	.probe = rmem_probe,
	.remove = rmem_remove,
	.config_changed = rmem_config_changed,
};

static int __init rmem_init(void)
{
	/* The uapi's bits are the device's, passed through unchanged. */
	BUILD_BUG_ON(RMEM_RIGHT_READ != VIRTIO_RMEM_RIGHT_READ);
	BUILD_BUG_ON(RMEM_RIGHT_WRITE != VIRTIO_RMEM_RIGHT_WRITE);
	BUILD_BUG_ON(RMEM_RIGHT_CPU_MAP != VIRTIO_RMEM_RIGHT_CPU_MAP);
	BUILD_BUG_ON(RMEM_HEAP_F_CPU_MAP != VIRTIO_RMEM_HEAP_F_CPU_MAP);
	BUILD_BUG_ON(RMEM_HEAP_F_MAY_ALLOC != VIRTIO_RMEM_HEAP_F_MAY_ALLOC);
	BUILD_BUG_ON(RMEM_HEAP_F_REVOKE != VIRTIO_RMEM_HEAP_F_REVOKE);
	BUILD_BUG_ON(RMEM_KIND_SHARE != VIRTIO_RMEM_KIND_SHARE);
	BUILD_BUG_ON(RMEM_KIND_LEND != VIRTIO_RMEM_KIND_LEND);
	BUILD_BUG_ON(RMEM_KIND_DONATE != VIRTIO_RMEM_KIND_DONATE);
	BUILD_BUG_ON(RMEM_RECLAIM_REVOKE != VIRTIO_RMEM_RECLAIM_REVOKE);
	BUILD_BUG_ON(RMEM_EVENT_OFFERED != VIRTIO_RMEM_EVENT_OFFERED);
	BUILD_BUG_ON(RMEM_EVENT_DONATED != VIRTIO_RMEM_EVENT_DONATED);
	BUILD_BUG_ON(RMEM_REASON_PEER_GONE != VIRTIO_RMEM_REASON_PEER_GONE);
	BUILD_BUG_ON(sizeof(struct rmem_event) !=
		     sizeof(struct virtio_rmem_event));
	return register_virtio_driver(&rmem_driver);
}

static void __exit rmem_exit(void)
{
	unregister_virtio_driver(&rmem_driver);
}

module_init(rmem_init);
module_exit(rmem_exit);

RMEM_IMPORT_NS_DMA_BUF();
MODULE_DESCRIPTION("virtio-rmem: restricted memory buffers as dma-bufs");
MODULE_LICENSE("GPL");
