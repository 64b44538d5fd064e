/* SPDX-License-Identifier: GPL-2.0 */
/*
 * virtio_rmem: the guest driver of the virtio-rmem device
 * (docs/virtio-rmem.md). Internal declarations shared by its files:
 *
 *   rmem_main.c  the virtio driver: probe, remove, configuration, feature
 *                negotiation, the broken-device state
 *   rmem_vq.c    requestq (requests and their completion, timeouts) and
 *                eventq (kept filled; events applied, then queued for readers)
 *   rmem_buf.c   buffers: the dma-buf exporter, mmap with rights, the
 *                buffer state machine, releasing a buffer's last reference
 *   rmem_cdev.c  /dev/rmem: ioctls, read() and poll() of events
 *   rmem_heap.c  dma-buf heaps /dev/dma_heap/rmem-<heap> (Linux >= 6.18)
 *
 * Locking, outermost first (never taken in the other order):
 *
 *   buf->op_lock      serializes the ioctls on one buffer; held across the
 *                     device request, so it is never taken under another lock
 *   mmap_lock         (the fault handler runs under it)
 *   rdev->lock        the buffer tables, every buffer's state and its link
 *                     to its dma-buf; never held across a device request nor
 *                     a user copy
 *   buf->map_lock     buf->access and the kernel mapping (vmap); the fault
 *                     handler holds it while it inserts PFNs
 *   i_mmap_rwsem      (unmap_mapping_range, called under rdev->lock)
 *   rdev->req_lock, rdev->event_lock, rdev->evq_lock   spinlocks, innermost
 */
#ifndef RMEM_DRIVER_RMEM_H
#define RMEM_DRIVER_RMEM_H

#include <linux/completion.h>
#include <linux/dma-buf.h>
#include <linux/hashtable.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "virtio_rmem/uapi/virtio_rmem.h"
#include "guest_driver/uapi/rmem.h"

#define RMEM_EVENT_QUEUE_LEN	256	/* events kept for readers */
#define RMEM_MAX_EVENT_BUFS	64	/* eventq buffers (fewer if the ring is smaller) */
#define RMEM_MAX_HEAPS_CACHED	64	/* heaps whose GET_HEAP answer is kept */
#define RMEM_MAX_RECEIVERS	256	/* most receivers the driver sends at once */

extern unsigned int rmem_request_timeout_ms;
extern bool rmem_raw_requests;

/* A heap's GET_HEAP answer, kept from probe (the policy does not change). */
struct rmem_heap_cache {
	bool valid;
	char name[RMEM_NAME_SIZE];
	u32 flags;	/* VIRTIO_RMEM_HEAP_F_* */
};

struct rmem_dev {
	struct kref ref;		/* probe, each open file, each buffer */
	struct virtio_device *vdev;	/* NULL once removed */
	struct virtqueue *req_vq;
	struct virtqueue *event_vq;
	int index;			/* /dev/rmem, /dev/rmem1, ... */
	char name[16];
	struct miscdevice misc;
	bool misc_registered;

	/* The configuration (read once at probe; it must not change). */
	u32 vm_id;
	u32 num_heaps;
	u32 num_peers;
	u32 max_receivers;
	u64 quota_bytes;
	u64 features;			/* RMEM_FEATURE_* negotiated */
	phys_addr_t shm_addr;		/* VIRTIO_RMEM_SHM_BUFFERS, guest physical */
	u64 shm_len;			/* 0: the device has no such region */
	struct rmem_heap_cache heaps[RMEM_MAX_HEAPS_CACHED];

	/*
	 * requestq. Several requests may be in flight, each its own chain;
	 * every chain in the ring is on @inflight until the device returns
	 * it or the ring is torn down. @stopped (removed or broken) refuses
	 * new requests with @stop_error.
	 */
	spinlock_t req_lock;
	struct list_head inflight;
	wait_queue_head_t req_space;	/* the ring had no room */
	bool stopped;
	int stop_error;
	bool vqs_dead;			/* del_vqs() is next: no vq calls */

	/* eventq: buffers the device fills, drained by @event_work. */
	spinlock_t event_lock;
	struct virtio_rmem_event *event_bufs;
	unsigned int nr_event_bufs;
	struct work_struct event_work;
	bool events_dead;		/* del_vqs() is next: no vq calls */
	u32 events_short;		/* buffers returned with a bad length */

	/* Events waiting for readers (one queue per device). */
	spinlock_t evq_lock;
	struct rmem_event evq[RMEM_EVENT_QUEUE_LEN];
	unsigned int evq_head;
	unsigned int evq_count;
	u32 evq_dropped;		/* lost and not reported yet */
	wait_queue_head_t evq_wait;
	struct mutex read_lock;		/* one reader at a time takes events */

	/* Buffers. */
	struct mutex lock;
	DECLARE_HASHTABLE(owned, 6);	/* by buffer id */
	DECLARE_HASHTABLE(borrowed, 6);	/* by handle */
	struct list_head release_list;	/* dma-bufs released, device not told yet */
	struct work_struct release_work;
	struct work_struct broken_work;
	bool events_ended;		/* broken_work done: readers get ENODEV */
	bool removed;			/* remove() ran: no buffer is usable */
};

/*
 * A buffer this VM holds, and its dma-buf. States (rdev->lock), the
 * transitions the driver makes, and whether the CPU may reach the pages
 * (buf->access, for buffers with VIRTIO_RMEM_RIGHT_CPU_MAP and a region
 * offset):
 *
 *   state    role      access  left by
 *   ACTIVE   owner     yes     SHARE ok -> OFFERED; LEND, DONATE ok -> AWAY;
 *                              FREE ok -> GONE
 *   ACTIVE   borrower  yes     RELINQUISH ok, REVOKED event -> GONE
 *   OFFERED  owner     yes     RECLAIM ok -> ACTIVE
 *   AWAY     owner     no      RECLAIM ok -> ACTIVE at RECLAIM's offset;
 *                              DONATED event -> GONE
 *   GONE     any       no      (final)
 *   any      any       no      device removed or broken -> GONE
 *
 * Before a request that ends the VM's access (FREE, RELINQUISH, LEND,
 * DONATE) the driver takes access away and zaps the user mappings; if the
 * request fails, access comes back (the pages fault in again). After
 * RECLAIM of a lend the device maps the buffer back, maybe at another
 * offset, which RECLAIM's response carries. Offset lost: if that answer
 * does not place the buffer sanely (a device bug), the buffer stays usable
 * for everything but CPU access (RMEM_STATE_NO_OFFSET).
 */
enum rmem_buf_state {
	RMEM_BUF_PENDING = 0,	/* RETRIEVE in flight (never has a dma-buf) */
	RMEM_BUF_ACTIVE = RMEM_STATE_ACCESSIBLE,
	RMEM_BUF_OFFERED = RMEM_STATE_OFFERED,
	RMEM_BUF_AWAY = RMEM_STATE_AWAY,
	RMEM_BUF_GONE = RMEM_STATE_GONE,
};

struct rmem_buf {
	struct kref ref;		/* from creation until the release path is done */
	struct rmem_dev *rdev;		/* holds a reference */
	struct dma_buf *dmabuf;		/* NULL once released (rdev->lock) */
	struct inode *inode;		/* the dma-buf's, held: zap target */
	struct hlist_node node;		/* rdev->owned or rdev->borrowed */
	bool hashed;
	bool orphan;			/* released, but the device still has it */
	struct list_head release_node;	/* rdev->release_list */
	struct mutex op_lock;		/* one ioctl or release at a time */

	u32 role;			/* RMEM_ROLE_* */
	enum rmem_buf_state state;
	u64 id;				/* owner: buffer id */
	u64 handle;			/* the open offer's, or the retrieved one */
	u32 kind;			/* of that offer, or 0 */
	u32 peer;			/* borrower: the owner */
	u32 heap;			/* index, or U32_MAX if not known */
	u64 size;
	u64 shm_offset;			/* VIRTIO_RMEM_NO_OFFSET: not CPU-mappable */
	bool offset_lost;		/* see "Offset lost" above */
	u32 rights;

	struct mutex map_lock;		/* the next three, and faults */
	bool access;			/* the CPU may touch the pages now */
	void *vaddr;			/* kernel mapping (vmap), or NULL */
	unsigned int vmap_count;
};

/* rmem_main.c */
void rmem_dev_put(struct rmem_dev *rdev);
void rmem_dev_get(struct rmem_dev *rdev);
void rmem_dev_set_broken(struct rmem_dev *rdev, const char *why);
bool rmem_dev_stopped(struct rmem_dev *rdev);

/* rmem_vq.c */
int rmem_transact(struct rmem_dev *rdev, const void *req, size_t req_len,
		  void *resp, size_t resp_len, u32 *used);
int rmem_request(struct rmem_dev *rdev, const void *req, size_t req_len,
		 void *resp, size_t resp_len);
int rmem_status_errno(u32 status);
void rmem_req_done(struct virtqueue *vq);
bool rmem_req_fail_all(struct rmem_dev *rdev, int error);
void rmem_req_teardown(struct rmem_dev *rdev);
int rmem_events_start(struct rmem_dev *rdev);
void rmem_events_stop(struct rmem_dev *rdev);
void rmem_events_teardown(struct rmem_dev *rdev);
void rmem_event_done(struct virtqueue *vq);
void rmem_event_work(struct work_struct *work);
void rmem_evq_push(struct rmem_dev *rdev, const struct rmem_event *ev);

/* rmem_buf.c */
int rmem_buf_alloc(struct rmem_dev *rdev, struct rmem_alloc *args,
		   struct dma_buf **out);
int rmem_buf_retrieve(struct rmem_dev *rdev, struct rmem_retrieve *args,
		      struct dma_buf **out);
struct rmem_buf *rmem_buf_get(struct rmem_dev *rdev, int fd);
void rmem_buf_put(struct rmem_buf *buf);
bool rmem_is_rmem_dmabuf(const struct dma_buf *dmabuf);
int rmem_buf_offer(struct rmem_buf *buf, u32 type,
		   const struct rmem_receiver *to, u32 n, u64 *handle);
int rmem_buf_donate(struct rmem_buf *buf, u32 vm_id, u64 *handle);
int rmem_buf_relinquish(struct rmem_buf *buf);
int rmem_relinquish_handle(struct rmem_dev *rdev, u64 handle);
int rmem_buf_reclaim(struct rmem_buf *buf, u32 flags);
int rmem_buf_free(struct rmem_buf *buf);
void rmem_buf_info(struct rmem_buf *buf, struct rmem_buf_info *info);
void rmem_bufs_apply_event(struct rmem_dev *rdev,
			   const struct virtio_rmem_event *ev);
void rmem_bufs_kill_all(struct rmem_dev *rdev);
void rmem_release_work(struct work_struct *work);
void rmem_bufs_teardown(struct rmem_dev *rdev);

/* rmem_cdev.c */
int rmem_cdev_register(struct rmem_dev *rdev);
void rmem_cdev_unregister(struct rmem_dev *rdev);

/* rmem_heap.c */
void rmem_heaps_register(struct rmem_dev *rdev);
void rmem_heaps_unregister(struct rmem_dev *rdev);

#endif /* RMEM_DRIVER_RMEM_H */
