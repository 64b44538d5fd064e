// SPDX-License-Identifier: GPL-2.0
/*
 * virtio_rmem: buffers and their dma-bufs.
 *
 * Every buffer this VM holds (allocated, donated to it, or a retrieved
 * share or lend) is a struct rmem_buf exported as a dma-buf; rmem.h tables
 * its states. The buffer's bytes are its range of the device's shared
 * memory region (docs/virtio-rmem.md 5), reachable only while the device
 * says so and with the rights it reported.
 *
 * Memory type. The region is RAM the host provides (carve-out pages the VMM
 * maps into the region at the device's request), so it is mapped as Normal
 * write-back memory everywhere, never as Device memory: user mappings get
 * the default protection of a shared mapping (Normal), the kernel mapping
 * (vmap) comes from memremap(MEMREMAP_WB).
 *
 * No struct pages. The driver maps PFNs (VM_PFNMAP | VM_IO, inserted by
 * the fault handler) rather than giving the region struct pages with
 * devm_memremap_pages(MEMORY_DEVICE_GENERIC):
 *  - Revocation must be complete. A PFN mapping cannot be pinned
 *    (get_user_pages() refuses VM_PFNMAP | VM_IO), so zapping the page
 *    tables ends every user access. Pages inserted with vm_insert_page()
 *    can be pinned (O_DIRECT, io_uring fixed buffers, vmsplice), and a pin
 *    would outlive a REVOKED event or a FREE: the kernel would later touch
 *    an address the VMM no longer maps, and rmem-vmm stops the guest.
 *  - The region is large and mostly not mapped at stage 2 (only the
 *    buffers held are): memremap_pages() would put all of it into the
 *    kernel's linear map and spend guest RAM on struct pages for it.
 *  - No importer here could use an sg table: the guest's DMA-capable
 *    devices are virtio devices whose back-ends cannot reach the region,
 *    and device-only buffers, the ones device initiators use, are not in
 *    the region at all. So importers are refused at attach (-EOPNOTSUPP);
 *    kernel users have vmap, user space has mmap.
 * Mapping at fault time rather than with remap_pfn_range() in mmap()
 * closes a race: a VMA joins the dma-buf's address space only after
 * ->mmap returns, so a revocation in between would miss PTEs installed by
 * ->mmap. A fault runs only on a linked VMA and inserts PFNs only while
 * buf->access is set, under buf->map_lock, which revocation clears before
 * it zaps (unmap_mapping_range on the dma-buf's inode, which the buffer
 * holds so that it can zap at any time).
 *
 * Rights. Without VIRTIO_RMEM_RIGHT_CPU_MAP there is no mmap, vmap or CPU
 * access at all. Without VIRTIO_RMEM_RIGHT_WRITE the dma-buf file is
 * read-only, a writable mapping is refused (EACCES) and VM_MAYWRITE is
 * cleared so that mprotect() cannot add write access later, and CPU access
 * for writing (begin_cpu_access other than DMA_FROM_DEVICE) is refused.
 * Mappings are shared only (a private mapping of this memory means
 * nothing) and never executable. A kernel vmap of a read-only buffer is
 * writable at stage 1; stage 2 is what stops a kernel bug writing it.
 *
 * Closing the last reference (the dma-buf's release) tells the device, from
 * a work item: an owner's buffer is freed, after closing its open offer
 * (RECLAIM, with revoke where the heap and the features allow it); if a
 * receiver still holds it and cannot be revoked, the buffer is kept as an
 * orphan and freed when a RELINQUISHED event says a receiver gave it back.
 * A borrower's buffer is relinquished. A buffer that is gone (freed,
 * relinquished, revoked, donated, the device removed or broken) needs
 * nothing.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-buf.h>
#include <linux/dma-direction.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/iosys-map.h>
#include <linux/mm.h>
#include <linux/sizes.h>
#include <linux/slab.h>

#include "rmem.h"
#include "rmem_compat.h"

/* Pages inserted per fault: the faulting one and the next ones (as TTM). */
#define RMEM_FAULT_AROUND 16

static const struct dma_buf_ops rmem_dmabuf_ops;

static void rmem_buf_destroy(struct kref *ref)
{
	struct rmem_buf *buf = container_of(ref, struct rmem_buf, ref);

	/* dma-buf's own vmap count keeps a vmap from outliving the file. */
	if (WARN_ON_ONCE(buf->vaddr))
		memunmap(buf->vaddr);
	if (buf->inode)
		iput(buf->inode);
	mutex_destroy(&buf->op_lock);
	mutex_destroy(&buf->map_lock);
	rmem_dev_put(buf->rdev);
	kfree(buf);
}

static void rmem_buf_unref(struct rmem_buf *buf)
{
	kref_put(&buf->ref, rmem_buf_destroy);
}

static struct rmem_buf *rmem_buf_new(struct rmem_dev *rdev, u32 role)
{
	struct rmem_buf *buf = kzalloc(sizeof(*buf), GFP_KERNEL);

	if (!buf)
		return NULL;
	kref_init(&buf->ref);
	mutex_init(&buf->op_lock);
	mutex_init(&buf->map_lock);
	INIT_HLIST_NODE(&buf->node);
	INIT_LIST_HEAD(&buf->release_node);
	buf->role = role;
	buf->state = RMEM_BUF_PENDING;
	buf->heap = U32_MAX;
	buf->shm_offset = VIRTIO_RMEM_NO_OFFSET;
	rmem_dev_get(rdev);
	buf->rdev = rdev;
	return buf;
}

bool rmem_is_rmem_dmabuf(const struct dma_buf *dmabuf)
{
	return dmabuf->ops == &rmem_dmabuf_ops;
}

static bool rmem_buf_cpu_mappable(const struct rmem_buf *buf)
{
	return (buf->rights & VIRTIO_RMEM_RIGHT_CPU_MAP) &&
	       buf->shm_offset != VIRTIO_RMEM_NO_OFFSET;
}

static phys_addr_t rmem_buf_phys(const struct rmem_buf *buf)
{
	return buf->rdev->shm_addr + buf->shm_offset;
}

/*
 * Whether the CPU may reach the buffer's pages from now on. Taking access
 * away zaps every user mapping; the pages fault in again if it comes back.
 */
static void rmem_buf_set_access(struct rmem_buf *buf, bool on)
{
	mutex_lock(&buf->map_lock);
	buf->access = on && rmem_buf_cpu_mappable(buf);
	mutex_unlock(&buf->map_lock);
	if (!on && buf->inode)
		unmap_mapping_range(buf->inode->i_mapping, 0, 0, 1);
}

static bool rmem_buf_vmapped(struct rmem_buf *buf)
{
	bool vmapped;

	mutex_lock(&buf->map_lock);
	vmapped = buf->vmap_count;
	mutex_unlock(&buf->map_lock);
	return vmapped;
}

static struct rmem_buf *rmem_find_owned_locked(struct rmem_dev *rdev, u64 id)
{
	struct rmem_buf *buf;

	hash_for_each_possible(rdev->owned, buf, node, id)
		if (buf->id == id)
			return buf;
	return NULL;
}

static struct rmem_buf *rmem_find_borrowed_locked(struct rmem_dev *rdev,
						  u64 handle)
{
	struct rmem_buf *buf;

	hash_for_each_possible(rdev->borrowed, buf, node, handle)
		if (buf->handle == handle)
			return buf;
	return NULL;
}

static void rmem_buf_hash_locked(struct rmem_buf *buf)
{
	struct rmem_dev *rdev = buf->rdev;

	if (buf->role == RMEM_ROLE_OWNER)
		hash_add(rdev->owned, &buf->node, buf->id);
	else
		hash_add(rdev->borrowed, &buf->node, buf->handle);
	buf->hashed = true;
}

static void rmem_buf_unhash_locked(struct rmem_buf *buf)
{
	if (buf->hashed) {
		hash_del(&buf->node);
		buf->hashed = false;
	}
}

static bool rmem_dev_gone_locked(struct rmem_dev *rdev)
{
	lockdep_assert_held(&rdev->lock);
	return rdev->removed || rmem_dev_stopped(rdev);
}

/* The errno for an operation on a buffer that is gone. */
static int rmem_gone_errno_locked(struct rmem_dev *rdev)
{
	return rmem_dev_gone_locked(rdev) ? -ENODEV : -ENOENT;
}

/*
 * The buffer is no longer this VM's: no access, out of the tables. An
 * orphan (released, waiting for the device) goes to the release path,
 * which drops it.
 */
static void rmem_buf_kill_locked(struct rmem_buf *buf)
{
	struct rmem_dev *rdev = buf->rdev;

	lockdep_assert_held(&rdev->lock);
	buf->state = RMEM_BUF_GONE;
	rmem_buf_unhash_locked(buf);
	if (rmem_buf_vmapped(buf))
		pr_warn_ratelimited("%s: buffer 0x%llx/handle 0x%llx went away while mapped in the kernel\n",
				    rdev->name, buf->id, buf->handle);
	rmem_buf_set_access(buf, false);
	if (buf->orphan && list_empty(&buf->release_node)) {
		list_add_tail(&buf->release_node, &rdev->release_list);
		if (!rdev->removed)
			schedule_work(&rdev->release_work);
	}
}

/* After a failed request that would have ended access: access comes back. */
static void rmem_buf_restore_locked(struct rmem_buf *buf)
{
	lockdep_assert_held(&buf->rdev->lock);
	if (rmem_dev_gone_locked(buf->rdev))
		return;
	if (buf->state == RMEM_BUF_ACTIVE || buf->state == RMEM_BUF_OFFERED)
		rmem_buf_set_access(buf, true);
}

/*
 * Makes a new buffer visible (in the tables, accessible) in @state, unless
 * it went away meanwhile: a REVOKED event for a retrieve in flight, or the
 * device removed or broken. Returns 0 or the errno for that.
 */
static int rmem_buf_publish(struct rmem_buf *buf, enum rmem_buf_state state)
{
	struct rmem_dev *rdev = buf->rdev;
	int err = 0;

	mutex_lock(&rdev->lock);
	if (buf->state == RMEM_BUF_GONE || rmem_dev_gone_locked(rdev)) {
		err = rmem_gone_errno_locked(rdev);
		buf->state = RMEM_BUF_GONE;
		rmem_buf_unhash_locked(buf);
	} else {
		buf->state = state;
		if (!buf->hashed)
			rmem_buf_hash_locked(buf);
		rmem_buf_set_access(buf, true);
	}
	mutex_unlock(&rdev->lock);
	return err;
}

/* Requests with a one-value body and a bare response header. */
static int rmem_send_free(struct rmem_dev *rdev, u64 id)
{
	struct virtio_rmem_req_free req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_FREE),
		.buffer = cpu_to_le64(id),
	};
	struct virtio_rmem_resp_hdr resp;

	return rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
}

static int rmem_send_relinquish(struct rmem_dev *rdev, u64 handle)
{
	struct virtio_rmem_req_handle req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_RELINQUISH),
		.handle = cpu_to_le64(handle),
	};
	struct virtio_rmem_resp_hdr resp;

	return rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
}

/* RECLAIM; @shm_offset (may be NULL) gets where the owner sees it now. */
static int rmem_send_reclaim(struct rmem_dev *rdev, u64 id, u32 flags,
			     u64 *shm_offset)
{
	struct virtio_rmem_req_reclaim req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_RECLAIM),
		.buffer = cpu_to_le64(id),
		.flags = cpu_to_le32(flags),
	};
	struct virtio_rmem_resp_reclaim resp;
	int err;

	err = rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
	if (!err && shm_offset)
		*shm_offset = le64_to_cpu(resp.shm_offset);
	return err;
}

/*
 * Whether a response places a buffer where it can be: a 4 KiB multiple in
 * size, rights the spec defines, in the region exactly when the rights
 * include CPU mapping, and inside it. Anything else is the device's bug.
 */
static int rmem_check_placement(struct rmem_dev *rdev, u64 size, u64 offset,
				u32 rights, const char *what)
{
	bool cpu = rights & VIRTIO_RMEM_RIGHT_CPU_MAP;
	u64 end;

	if (size && IS_ALIGNED(size, SZ_4K) && size <= MAX_LFS_FILESIZE &&
	    !(rights & ~VIRTIO_RMEM_RIGHTS_ALL)) {
		if (offset == VIRTIO_RMEM_NO_OFFSET && !cpu)
			return 0;
		if (offset != VIRTIO_RMEM_NO_OFFSET && cpu &&
		    IS_ALIGNED(offset, SZ_4K) &&
		    !check_add_overflow(offset, size, &end) &&
		    end <= rdev->shm_len)
			return 0;
	}
	pr_err_ratelimited("%s: %s answer places 0x%llx bytes at 0x%llx with rights 0x%x (region 0x%llx bytes): refused\n",
			   rdev->name, what, size, offset, rights, rdev->shm_len);
	return -EIO;
}

static int rmem_buf_export(struct rmem_buf *buf)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	struct dma_buf *dmabuf;

	exp.ops = &rmem_dmabuf_ops;
	exp.size = buf->size;
	exp.flags = buf->rights & VIRTIO_RMEM_RIGHT_WRITE ? O_RDWR : O_RDONLY;
	exp.priv = buf;
	dmabuf = dma_buf_export(&exp);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	buf->dmabuf = dmabuf;
	buf->inode = file_inode(dmabuf->file);
	ihold(buf->inode);
	return 0;
}

/*
 * ALLOC: a new owned buffer and its dma-buf (one reference, for the
 * caller). If anything fails after the device allocated, the buffer is
 * freed again.
 */
int rmem_buf_alloc(struct rmem_dev *rdev, struct rmem_alloc *args,
		   struct dma_buf **out)
{
	struct virtio_rmem_req_alloc req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_ALLOC),
		.heap = cpu_to_le32(args->heap),
		.size = cpu_to_le64(args->size),
		.align = cpu_to_le64(args->align),
	};
	struct virtio_rmem_resp_alloc resp;
	struct rmem_buf *buf;
	int err;

	if (args->flags)
		return -EINVAL;
	buf = rmem_buf_new(rdev, RMEM_ROLE_OWNER);
	if (!buf)
		return -ENOMEM;
	err = rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
	if (err)
		goto out_unref;
	buf->id = le64_to_cpu(resp.buffer);
	buf->size = le64_to_cpu(resp.size);
	buf->shm_offset = le64_to_cpu(resp.shm_offset);
	buf->rights = le32_to_cpu(resp.rights);
	buf->heap = args->heap;
	err = rmem_check_placement(rdev, buf->size, buf->shm_offset,
				   buf->rights, "ALLOC");
	if (!err && buf->size < args->size)
		err = -EIO;
	if (!err)
		err = rmem_buf_export(buf);
	if (err) {
		rmem_send_free(rdev, buf->id);
		goto out_unref;
	}
	err = rmem_buf_publish(buf, RMEM_BUF_ACTIVE);
	if (err) {
		dma_buf_put(buf->dmabuf); /* the release path drops it */
		return err;
	}
	args->size = buf->size;
	args->buffer = buf->id;
	args->rights = buf->rights;
	*out = buf->dmabuf;
	return 0;

out_unref:
	rmem_buf_unref(buf);
	return err;
}

/*
 * RETRIEVE: a borrowed buffer (share, lend) or, for a donation, an owned
 * one, and its dma-buf. While the request is in flight the buffer waits in
 * the borrowed table (PENDING), so that a REVOKED event for the handle
 * that overtakes the response finds it.
 */
int rmem_buf_retrieve(struct rmem_dev *rdev, struct rmem_retrieve *args,
		      struct dma_buf **out)
{
	struct virtio_rmem_req_handle req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_RETRIEVE),
		.handle = cpu_to_le64(args->handle),
	};
	struct virtio_rmem_resp_retrieve resp;
	struct rmem_buf *buf;
	bool donated;
	u64 id;
	int err;

	buf = rmem_buf_new(rdev, RMEM_ROLE_BORROWER);
	if (!buf)
		return -ENOMEM;
	buf->handle = args->handle;
	mutex_lock(&rdev->lock);
	if (rmem_find_borrowed_locked(rdev, args->handle))
		err = -EBUSY; /* retrieved, or being retrieved, already */
	else if (rmem_dev_gone_locked(rdev))
		err = -ENODEV;
	else
		err = 0;
	if (!err)
		rmem_buf_hash_locked(buf);
	mutex_unlock(&rdev->lock);
	if (err)
		goto out_unref;

	err = rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
	if (err) {
		mutex_lock(&rdev->lock);
		rmem_buf_unhash_locked(buf);
		mutex_unlock(&rdev->lock);
		goto out_unref;
	}
	buf->size = le64_to_cpu(resp.size);
	buf->shm_offset = le64_to_cpu(resp.shm_offset);
	buf->rights = le32_to_cpu(resp.rights);
	buf->peer = le32_to_cpu(resp.owner);
	buf->kind = le32_to_cpu(resp.kind);
	id = le64_to_cpu(resp.buffer);
	donated = buf->kind == VIRTIO_RMEM_KIND_DONATE;
	if (buf->kind < VIRTIO_RMEM_KIND_SHARE ||
	    buf->kind > VIRTIO_RMEM_KIND_DONATE || (donated && !id)) {
		pr_err_ratelimited("%s: RETRIEVE answer with kind %u, buffer 0x%llx: refused\n",
				   rdev->name, buf->kind, id);
		err = -EIO;
	} else {
		err = rmem_check_placement(rdev, buf->size, buf->shm_offset,
					   buf->rights, "RETRIEVE");
	}

	mutex_lock(&rdev->lock);
	if (err) {
		rmem_buf_unhash_locked(buf);
	} else if (donated && buf->state != RMEM_BUF_GONE) {
		/* Ours now: it moves to the owned table, under its id. */
		rmem_buf_unhash_locked(buf);
		buf->role = RMEM_ROLE_OWNER;
		buf->id = id;
		buf->handle = 0;
		buf->kind = 0;
		buf->peer = 0;
		rmem_buf_hash_locked(buf);
	}
	mutex_unlock(&rdev->lock);
	if (err) {
		/* The device answered OK, but not sensibly: give it back. */
		if (donated && id)
			rmem_send_free(rdev, id);
		else
			rmem_send_relinquish(rdev, args->handle);
		goto out_unref;
	}

	err = rmem_buf_export(buf);
	if (err) {
		mutex_lock(&rdev->lock);
		rmem_buf_kill_locked(buf);
		mutex_unlock(&rdev->lock);
		if (donated)
			rmem_send_free(rdev, id);
		else
			rmem_send_relinquish(rdev, args->handle);
		goto out_unref;
	}
	err = rmem_buf_publish(buf, RMEM_BUF_ACTIVE);
	if (err) {
		dma_buf_put(buf->dmabuf);
		return err;
	}
	args->size = buf->size;
	args->buffer = donated ? id : 0;
	args->rights = buf->rights;
	args->owner = le32_to_cpu(resp.owner);
	args->kind = donated ? VIRTIO_RMEM_KIND_DONATE : buf->kind;
	*out = buf->dmabuf;
	return 0;

out_unref:
	rmem_buf_unref(buf);
	return err;
}

/* The buffer behind dma-buf @fd, if it is one of @rdev's (a reference). */
struct rmem_buf *rmem_buf_get(struct rmem_dev *rdev, int fd)
{
	struct dma_buf *dmabuf = dma_buf_get(fd);
	struct rmem_buf *buf;

	if (IS_ERR(dmabuf))
		return ERR_CAST(dmabuf);
	buf = dmabuf->priv;
	if (dmabuf->ops != &rmem_dmabuf_ops || buf->rdev != rdev) {
		dma_buf_put(dmabuf);
		return ERR_PTR(-EINVAL);
	}
	return buf;
}

void rmem_buf_put(struct rmem_buf *buf)
{
	dma_buf_put(buf->dmabuf);
}

/*
 * Whether an owner may start an offer (or free) now: rdev->lock held.
 * Returns 0, or the errno the device would give (or ENODEV).
 */
static int rmem_check_owner_idle_locked(struct rmem_buf *buf)
{
	if (buf->role != RMEM_ROLE_OWNER)
		return -EINVAL;
	if (buf->state == RMEM_BUF_GONE)
		return rmem_gone_errno_locked(buf->rdev);
	if (buf->state != RMEM_BUF_ACTIVE)
		return -EBUSY; /* an offer is open */
	return 0;
}

/*
 * SHARE or LEND of an owned buffer to @n receivers. LEND ends the owner's
 * access: the user mappings are zapped before the request is sent (spec
 * 5), and come back if it fails.
 */
int rmem_buf_offer(struct rmem_buf *buf, u32 type,
		   const struct rmem_receiver *to, u32 n, u64 *handle)
{
	struct rmem_dev *rdev = buf->rdev;
	bool lend = type == VIRTIO_RMEM_REQ_LEND;
	struct virtio_rmem_req_share *req;
	struct virtio_rmem_receiver *wire;
	struct virtio_rmem_resp_offer resp;
	size_t len;
	u32 i;
	int err;

	if (lend && !(rdev->features & RMEM_FEATURE_LEND_DONATE))
		return -EOPNOTSUPP;
	if (!n || n > rdev->max_receivers || n > RMEM_MAX_RECEIVERS)
		return -EINVAL;
	len = sizeof(*req) + n * sizeof(*wire);
	req = kzalloc(len, GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	req->hdr.type = cpu_to_le32(type);
	req->num_receivers = cpu_to_le32(n);
	wire = (struct virtio_rmem_receiver *)(req + 1);
	for (i = 0; i < n; i++) {
		wire[i].vm_id = cpu_to_le32(to[i].vm_id);
		wire[i].rights = cpu_to_le32(to[i].rights);
	}

	mutex_lock(&buf->op_lock);
	mutex_lock(&rdev->lock);
	err = rmem_check_owner_idle_locked(buf);
	if (!err && lend && rmem_buf_vmapped(buf))
		err = -EBUSY;
	if (!err) {
		req->buffer = cpu_to_le64(buf->id);
		if (lend)
			rmem_buf_set_access(buf, false);
	}
	mutex_unlock(&rdev->lock);
	if (err)
		goto out;

	err = rmem_request(rdev, req, len, &resp, sizeof(resp));
	mutex_lock(&rdev->lock);
	if (!err) {
		*handle = le64_to_cpu(resp.handle);
		if (buf->state != RMEM_BUF_GONE) {
			buf->state = lend ? RMEM_BUF_AWAY : RMEM_BUF_OFFERED;
			buf->handle = *handle;
			buf->kind = lend ? VIRTIO_RMEM_KIND_LEND :
				    VIRTIO_RMEM_KIND_SHARE;
		}
	} else if (lend) {
		rmem_buf_restore_locked(buf);
	}
	mutex_unlock(&rdev->lock);
out:
	mutex_unlock(&buf->op_lock);
	kfree(req);
	return err;
}

/* DONATE of an owned buffer: the owner's access ends as for LEND. */
int rmem_buf_donate(struct rmem_buf *buf, u32 vm_id, u64 *handle)
{
	struct rmem_dev *rdev = buf->rdev;
	struct virtio_rmem_req_donate req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_DONATE),
		.vm_id = cpu_to_le32(vm_id),
	};
	struct virtio_rmem_resp_offer resp;
	int err;

	if (!(rdev->features & RMEM_FEATURE_LEND_DONATE))
		return -EOPNOTSUPP;
	mutex_lock(&buf->op_lock);
	mutex_lock(&rdev->lock);
	err = rmem_check_owner_idle_locked(buf);
	if (!err && rmem_buf_vmapped(buf))
		err = -EBUSY;
	if (!err) {
		req.buffer = cpu_to_le64(buf->id);
		rmem_buf_set_access(buf, false);
	}
	mutex_unlock(&rdev->lock);
	if (err)
		goto out;

	err = rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
	mutex_lock(&rdev->lock);
	if (!err) {
		*handle = le64_to_cpu(resp.handle);
		if (buf->state != RMEM_BUF_GONE) {
			buf->state = RMEM_BUF_AWAY;
			buf->handle = *handle;
			buf->kind = VIRTIO_RMEM_KIND_DONATE;
		}
	} else {
		rmem_buf_restore_locked(buf);
	}
	mutex_unlock(&rdev->lock);
out:
	mutex_unlock(&buf->op_lock);
	return err;
}

/* RELINQUISH of a retrieved share or lend. */
int rmem_buf_relinquish(struct rmem_buf *buf)
{
	struct rmem_dev *rdev = buf->rdev;
	u64 handle = 0;
	int err;

	mutex_lock(&buf->op_lock);
	mutex_lock(&rdev->lock);
	if (buf->role != RMEM_ROLE_BORROWER)
		err = -EINVAL;
	else if (buf->state == RMEM_BUF_GONE)
		err = rmem_gone_errno_locked(rdev);
	else if (buf->state != RMEM_BUF_ACTIVE || rmem_buf_vmapped(buf))
		err = -EBUSY;
	else
		err = 0;
	if (!err) {
		handle = buf->handle;
		rmem_buf_set_access(buf, false);
	}
	mutex_unlock(&rdev->lock);
	if (err)
		goto out;

	err = rmem_send_relinquish(rdev, handle);
	mutex_lock(&rdev->lock);
	/* NOT_FOUND: revoked meanwhile; either way it is not ours now. */
	if (!err || err == -ENOENT)
		rmem_buf_kill_locked(buf);
	else
		rmem_buf_restore_locked(buf);
	mutex_unlock(&rdev->lock);
out:
	mutex_unlock(&buf->op_lock);
	return err;
}

/*
 * RELINQUISH by handle: the driver's buffer for it if it has one, else the
 * request goes to the device as it is (which answers for itself).
 */
int rmem_relinquish_handle(struct rmem_dev *rdev, u64 handle)
{
	struct rmem_buf *buf;
	int err = 0;

	mutex_lock(&rdev->lock);
	buf = rmem_find_borrowed_locked(rdev, handle);
	if (buf && buf->state == RMEM_BUF_PENDING)
		err = -EBUSY;
	else if (buf)
		kref_get(&buf->ref);
	mutex_unlock(&rdev->lock);
	if (err)
		return err;
	if (!buf)
		return rmem_send_relinquish(rdev, handle);
	err = rmem_buf_relinquish(buf);
	rmem_buf_unref(buf);
	return err;
}

/*
 * RECLAIM of an owned buffer's open offer. After a share the owner's
 * access never stopped; after a lend the device maps the buffer back and
 * RECLAIM's response says where (possibly another offset than before). An
 * answer that does not place the buffer sanely leaves it without CPU
 * access (rmem.h, "Offset lost").
 */
int rmem_buf_reclaim(struct rmem_buf *buf, u32 flags)
{
	struct rmem_dev *rdev = buf->rdev;
	u64 id = 0, offset = VIRTIO_RMEM_NO_OFFSET;
	int err;

	if (flags & ~RMEM_RECLAIM_REVOKE)
		return -EINVAL;
	if ((flags & RMEM_RECLAIM_REVOKE) &&
	    !(rdev->features & RMEM_FEATURE_RECLAIM_REVOKE))
		return -EOPNOTSUPP;
	mutex_lock(&buf->op_lock);
	mutex_lock(&rdev->lock);
	if (buf->role != RMEM_ROLE_OWNER)
		err = -EINVAL;
	else if (buf->state == RMEM_BUF_GONE)
		err = rmem_gone_errno_locked(rdev);
	else if (buf->state == RMEM_BUF_ACTIVE)
		err = -EBUSY; /* no open offer */
	else
		err = 0;
	id = buf->id;
	mutex_unlock(&rdev->lock);
	if (err)
		goto out;

	err = rmem_send_reclaim(rdev, id, flags, &offset);
	mutex_lock(&rdev->lock);
	if (!err && buf->state != RMEM_BUF_GONE) {
		if (buf->state == RMEM_BUF_AWAY &&
		    (buf->rights & VIRTIO_RMEM_RIGHT_CPU_MAP)) {
			if (rmem_check_placement(rdev, buf->size, offset,
						 buf->rights, "RECLAIM")) {
				buf->shm_offset = VIRTIO_RMEM_NO_OFFSET;
				buf->offset_lost = true;
			} else {
				buf->shm_offset = offset;
			}
		}
		buf->state = RMEM_BUF_ACTIVE;
		buf->handle = 0;
		buf->kind = 0;
		rmem_buf_set_access(buf, true);
	} else if (err == -ENOENT) {
		rmem_buf_kill_locked(buf); /* e.g. its donation was retrieved */
	}
	mutex_unlock(&rdev->lock);
out:
	mutex_unlock(&buf->op_lock);
	return err;
}

/* FREE of an owned buffer without an open offer. */
int rmem_buf_free(struct rmem_buf *buf)
{
	struct rmem_dev *rdev = buf->rdev;
	u64 id = 0;
	int err;

	mutex_lock(&buf->op_lock);
	mutex_lock(&rdev->lock);
	err = rmem_check_owner_idle_locked(buf);
	if (!err && rmem_buf_vmapped(buf))
		err = -EBUSY;
	if (!err) {
		id = buf->id;
		rmem_buf_set_access(buf, false);
	}
	mutex_unlock(&rdev->lock);
	if (err)
		goto out;

	err = rmem_send_free(rdev, id);
	mutex_lock(&rdev->lock);
	if (!err || err == -ENOENT)
		rmem_buf_kill_locked(buf);
	else
		rmem_buf_restore_locked(buf);
	mutex_unlock(&rdev->lock);
out:
	mutex_unlock(&buf->op_lock);
	return err;
}

void rmem_buf_info(struct rmem_buf *buf, struct rmem_buf_info *info)
{
	struct rmem_dev *rdev = buf->rdev;

	mutex_lock(&rdev->lock);
	info->role = buf->role;
	info->size = buf->size;
	info->buffer = buf->role == RMEM_ROLE_OWNER ? buf->id : 0;
	info->handle = buf->handle;
	info->rights = buf->rights;
	info->state = buf->state;
	if (buf->state == RMEM_BUF_ACTIVE && buf->offset_lost)
		info->state = RMEM_STATE_NO_OFFSET;
	info->kind = buf->kind;
	info->peer = buf->role == RMEM_ROLE_BORROWER ? buf->peer : 0;
	mutex_unlock(&rdev->lock);
}

/* What an event from the device changes for the driver's buffers. */
void rmem_bufs_apply_event(struct rmem_dev *rdev,
			   const struct virtio_rmem_event *ev)
{
	struct rmem_buf *buf;

	mutex_lock(&rdev->lock);
	switch (le32_to_cpu(ev->type)) {
	case VIRTIO_RMEM_EVENT_REVOKED:
		/* Already inaccessible (spec 7.8): stop touching it at once. */
		buf = rmem_find_borrowed_locked(rdev, le64_to_cpu(ev->handle));
		if (buf)
			rmem_buf_kill_locked(buf);
		break;
	case VIRTIO_RMEM_EVENT_DONATED:
		buf = rmem_find_owned_locked(rdev, le64_to_cpu(ev->buffer));
		if (buf)
			rmem_buf_kill_locked(buf);
		break;
	case VIRTIO_RMEM_EVENT_RELINQUISHED:
		/* An orphan may be freeable now. */
		buf = rmem_find_owned_locked(rdev, le64_to_cpu(ev->buffer));
		if (buf && buf->orphan && list_empty(&buf->release_node) &&
		    !rdev->removed) {
			list_add_tail(&buf->release_node, &rdev->release_list);
			schedule_work(&rdev->release_work);
		}
		break;
	default:
		break; /* OFFERED, RETRIEVED: for readers only */
	}
	mutex_unlock(&rdev->lock);
}

/* The device is removed or broken: no buffer is usable any more. */
void rmem_bufs_kill_all(struct rmem_dev *rdev)
{
	struct hlist_node *tmp;
	struct rmem_buf *buf;
	int bkt;

	mutex_lock(&rdev->lock);
	hash_for_each_safe(rdev->owned, bkt, tmp, buf, node)
		rmem_buf_kill_locked(buf);
	hash_for_each_safe(rdev->borrowed, bkt, tmp, buf, node)
		rmem_buf_kill_locked(buf);
	mutex_unlock(&rdev->lock);
}

static bool rmem_may_revoke(struct rmem_dev *rdev, u32 heap)
{
	return (rdev->features & RMEM_FEATURE_RECLAIM_REVOKE) &&
	       heap < RMEM_MAX_HEAPS_CACHED && rdev->heaps[heap].valid &&
	       (rdev->heaps[heap].flags & VIRTIO_RMEM_HEAP_F_REVOKE);
}

/*
 * Frees a released owner's buffer at the device, closing its offer first.
 * Returns false if it must wait (a receiver holds it): an orphan.
 */
static bool rmem_release_owned(struct rmem_buf *buf, enum rmem_buf_state state)
{
	struct rmem_dev *rdev = buf->rdev;
	int err;

	if (state == RMEM_BUF_OFFERED || state == RMEM_BUF_AWAY) {
		err = rmem_send_reclaim(rdev, buf->id, 0, NULL);
		if (err == -EBUSY && rmem_may_revoke(rdev, buf->heap))
			err = rmem_send_reclaim(rdev, buf->id,
						VIRTIO_RMEM_RECLAIM_REVOKE, NULL);
		if (err == -ENOENT || err == -ENODEV)
			return true; /* not ours any more, or no device */
		/* BUSY may also mean "no open offer": FREE decides. */
	}
	err = rmem_send_free(rdev, buf->id);
	if (err == -EBUSY || err == -EIO)
		return false;
	if (err && err != -ENOENT && err != -ENODEV)
		pr_warn_ratelimited("%s: FREE of released buffer 0x%llx: %d\n",
				    rdev->name, buf->id, err);
	return true;
}

/* Tells the device about one released buffer (or retries an orphan). */
static void rmem_release_one(struct rmem_buf *buf)
{
	struct rmem_dev *rdev = buf->rdev;
	enum rmem_buf_state state;
	bool done = true, drop;

	mutex_lock(&buf->op_lock);
	mutex_lock(&rdev->lock);
	state = rmem_dev_gone_locked(rdev) ? RMEM_BUF_GONE : buf->state;
	mutex_unlock(&rdev->lock);

	if (state == RMEM_BUF_GONE)
		done = true;
	else if (buf->role == RMEM_ROLE_BORROWER)
		rmem_send_relinquish(rdev, buf->handle);
	else
		done = rmem_release_owned(buf, state);

	mutex_lock(&rdev->lock);
	if (!done && buf->state != RMEM_BUF_GONE && !rdev->removed) {
		if (!buf->orphan)
			pr_info("%s: buffer 0x%llx released while a receiver holds it: freed once it is given back\n",
				rdev->name, buf->id);
		buf->orphan = true;
		drop = false;
	} else {
		buf->orphan = false;
		buf->state = RMEM_BUF_GONE;
		rmem_buf_unhash_locked(buf);
		/* Queued again meanwhile: that pass drops it. */
		drop = list_empty(&buf->release_node);
	}
	mutex_unlock(&rdev->lock);
	mutex_unlock(&buf->op_lock);
	if (drop)
		rmem_buf_unref(buf);
}

void rmem_release_work(struct work_struct *work)
{
	struct rmem_dev *rdev = container_of(work, struct rmem_dev,
					     release_work);
	struct rmem_buf *buf;

	for (;;) {
		mutex_lock(&rdev->lock);
		buf = list_first_entry_or_null(&rdev->release_list,
					       struct rmem_buf, release_node);
		if (buf)
			list_del_init(&buf->release_node);
		mutex_unlock(&rdev->lock);
		if (!buf)
			return;
		rmem_release_one(buf);
	}
}

/* remove(), after every work item stopped: drops what still waits. */
void rmem_bufs_teardown(struct rmem_dev *rdev)
{
	struct rmem_buf *buf, *tmp;
	LIST_HEAD(drop);

	mutex_lock(&rdev->lock);
	list_splice_init(&rdev->release_list, &drop);
	WARN_ON_ONCE(!hash_empty(rdev->owned) || !hash_empty(rdev->borrowed));
	list_for_each_entry(buf, &drop, release_node) {
		buf->state = RMEM_BUF_GONE;
		buf->orphan = false;
		rmem_buf_unhash_locked(buf);
	}
	mutex_unlock(&rdev->lock);
	list_for_each_entry_safe(buf, tmp, &drop, release_node) {
		list_del_init(&buf->release_node);
		rmem_buf_unref(buf);
	}
}

/* --- dma-buf exporter ------------------------------------------------------ */

/* Why the CPU may not reach the buffer now (mmap, vmap, cpu access). */
static int rmem_buf_cpu_errno(struct rmem_buf *buf)
{
	struct rmem_dev *rdev = buf->rdev;
	int err;

	mutex_lock(&rdev->lock);
	if (buf->state == RMEM_BUF_GONE)
		err = -ENODEV;
	else if (buf->offset_lost)
		err = -ENXIO;
	else
		err = -EBUSY; /* lent or being donated, or mid-request */
	mutex_unlock(&rdev->lock);
	return err;
}

static vm_fault_t rmem_vm_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct rmem_buf *buf = vma->vm_private_data;
	unsigned long npages = buf->size >> PAGE_SHIFT;
	unsigned long addr = vmf->address, pfn;
	pgoff_t pgoff = vmf->pgoff;
	vm_fault_t ret = VM_FAULT_SIGBUS;
	unsigned int i;

	mutex_lock(&buf->map_lock);
	if (!buf->access || pgoff >= npages)
		goto out;
	pfn = PHYS_PFN(rmem_buf_phys(buf)) + pgoff;
	ret = vmf_insert_pfn(vma, addr, pfn);
	for (i = 1; i < RMEM_FAULT_AROUND && !(ret & VM_FAULT_ERROR); i++) {
		addr += PAGE_SIZE;
		if (addr >= vma->vm_end || pgoff + i >= npages)
			break;
		if (vmf_insert_pfn(vma, addr, pfn + i) & VM_FAULT_ERROR)
			break;
	}
out:
	mutex_unlock(&buf->map_lock);
	return ret;
}

static const struct vm_operations_struct rmem_vm_ops = {
	.fault = rmem_vm_fault,
};

static int rmem_dmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	struct rmem_buf *buf = dmabuf->priv;
	vm_flags_t clear = VM_MAYEXEC;
	bool access, aligned;

	if (!(buf->rights & VIRTIO_RMEM_RIGHT_CPU_MAP))
		return -EACCES;
	/*
	 * MAP_SHARED (VM_MAYSHARE: a shared mapping of a read-only file,
	 * as every read-only buffer's is, has no VM_SHARED).
	 */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EACCES;
	if (!(buf->rights & VIRTIO_RMEM_RIGHT_WRITE)) {
		if (vma->vm_flags & VM_WRITE)
			return -EACCES;
		clear |= VM_MAYWRITE;
	}
	mutex_lock(&buf->map_lock);
	access = buf->access;
	/* A 4 KiB placement cannot be mapped with a larger PAGE_SIZE. */
	aligned = access && PAGE_ALIGNED(rmem_buf_phys(buf));
	mutex_unlock(&buf->map_lock);
	if (!access)
		return rmem_buf_cpu_errno(buf);
	if (!aligned)
		return -EINVAL;
	rmem_vma_flags_mod(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP,
			   clear);
	vma->vm_ops = &rmem_vm_ops;
	vma->vm_private_data = buf;
	return 0;
}

static int rmem_dmabuf_begin_cpu_access(struct dma_buf *dmabuf,
					enum dma_data_direction dir)
{
	struct rmem_buf *buf = dmabuf->priv;
	bool access;

	if (!(buf->rights & VIRTIO_RMEM_RIGHT_CPU_MAP))
		return -EACCES;
	if (dir != DMA_FROM_DEVICE && !(buf->rights & VIRTIO_RMEM_RIGHT_WRITE))
		return -EACCES;
	mutex_lock(&buf->map_lock);
	access = buf->access;
	mutex_unlock(&buf->map_lock);
	/*
	 * Coherent Normal memory: no cache maintenance. (A platform whose
	 * device initiators do not snoop would need it here.)
	 */
	return access ? 0 : rmem_buf_cpu_errno(buf);
}

static int rmem_dmabuf_end_cpu_access(struct dma_buf *dmabuf,
				      enum dma_data_direction dir)
{
	return 0;
}

static int rmem_dmabuf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct rmem_buf *buf = dmabuf->priv;
	int err = 0;

	if (!(buf->rights & VIRTIO_RMEM_RIGHT_CPU_MAP))
		return -EACCES;
	mutex_lock(&buf->map_lock);
	if (!buf->access) {
		mutex_unlock(&buf->map_lock);
		return rmem_buf_cpu_errno(buf);
	}
	if (!buf->vaddr) {
		buf->vaddr = memremap(rmem_buf_phys(buf), buf->size,
				      MEMREMAP_WB);
		if (!buf->vaddr)
			err = -ENOMEM;
	}
	if (!err) {
		buf->vmap_count++;
		iosys_map_set_vaddr(map, buf->vaddr);
	}
	mutex_unlock(&buf->map_lock);
	return err;
}

static void rmem_dmabuf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct rmem_buf *buf = dmabuf->priv;

	mutex_lock(&buf->map_lock);
	if (!WARN_ON_ONCE(!buf->vmap_count) && !--buf->vmap_count) {
		memunmap(buf->vaddr);
		buf->vaddr = NULL;
	}
	mutex_unlock(&buf->map_lock);
}

/* Device importers: refused, see the top of this file. */
static int rmem_dmabuf_attach(struct dma_buf *dmabuf,
			      struct dma_buf_attachment *attach)
{
	return -EOPNOTSUPP;
}

static struct sg_table *rmem_dmabuf_map(struct dma_buf_attachment *attach,
					enum dma_data_direction dir)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static void rmem_dmabuf_unmap(struct dma_buf_attachment *attach,
			      struct sg_table *sgt, enum dma_data_direction dir)
{
}

/* The last reference is gone: the release path tells the device. */
static void rmem_dmabuf_release(struct dma_buf *dmabuf)
{
	struct rmem_buf *buf = dmabuf->priv;
	struct rmem_dev *rdev = buf->rdev;
	bool tell;

	mutex_lock(&rdev->lock);
	buf->dmabuf = NULL;
	tell = buf->state != RMEM_BUF_GONE && !rmem_dev_gone_locked(rdev);
	if (tell) {
		list_add_tail(&buf->release_node, &rdev->release_list);
		schedule_work(&rdev->release_work);
	} else {
		buf->state = RMEM_BUF_GONE;
		rmem_buf_unhash_locked(buf);
	}
	mutex_unlock(&rdev->lock);
	if (!tell)
		rmem_buf_unref(buf);
}

static const struct dma_buf_ops rmem_dmabuf_ops = {
	.attach = rmem_dmabuf_attach,
	.map_dma_buf = rmem_dmabuf_map,
	.unmap_dma_buf = rmem_dmabuf_unmap,
	.release = rmem_dmabuf_release,
	.begin_cpu_access = rmem_dmabuf_begin_cpu_access,
	.end_cpu_access = rmem_dmabuf_end_cpu_access,
	.mmap = rmem_dmabuf_mmap,
	.vmap = rmem_dmabuf_vmap,
	.vunmap = rmem_dmabuf_vunmap,
};
