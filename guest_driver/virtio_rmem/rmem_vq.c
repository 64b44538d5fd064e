// SPDX-License-Identifier: GPL-2.0
/*
 * virtio_rmem: the two virtqueues.
 *
 * requestq (docs/virtio-rmem.md 7.1). Each request is one chain of two
 * descriptors, [request: device-readable][response: device-writable],
 * both in one kmalloc'd struct rmem_req. Several requests may be in flight
 * at once (one per caller; the device answers each chain on its own); a
 * full ring makes callers wait for room. A caller waits for its answer
 * uninterruptibly but never longer than request_timeout_ms: the driver
 * must know the outcome of every request it sent (a FREE it gave up on
 * might still unmap the buffer under a user mapping), so a request is
 * never abandoned while the device is trusted. When the device does not
 * answer in time, or says it needs a reset, or breaks the protocol, the
 * device is declared broken: every waiting request fails (ENODEV), no new
 * one is sent, and every buffer becomes unusable (rmem_main.c). A chain the
 * device still holds stays on @inflight, its memory owned by the ring,
 * until the device returns it or remove() resets the device and detaches
 * it.
 *
 * eventq (7.8). The driver keeps up to RMEM_MAX_EVENT_BUFS buffers of 56
 * bytes in the ring. The interrupt callback only schedules @event_work,
 * which copies each event out, gives the buffer straight back, applies
 * the event to the driver's buffers (REVOKED zaps the user mappings) and
 * then queues it for readers of /dev/rmem.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/overflow.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/virtio_config.h>

#include "rmem.h"

/* Who owns a request's memory, under rdev->req_lock. */
enum rmem_req_owner {
	RMEM_REQ_WAITING,	/* in the ring; the caller waits and will free it */
	RMEM_REQ_DONE,		/* out of the ring; the caller frees it */
	RMEM_REQ_ABANDONED,	/* in the ring; whoever takes it out frees it */
};

struct rmem_req {
	struct list_head node;		/* rdev->inflight while in the ring */
	struct completion done;
	enum rmem_req_owner owner;
	int error;
	u32 used;			/* the device's used length */
	u8 *out;			/* device-readable */
	u8 *in;				/* device-writable */
	u8 data[];
};

#define RMEM_MIN_TIMEOUT_MS 100

int rmem_status_errno(u32 status)
{
	switch (status) {
	case VIRTIO_RMEM_S_OK:
		return 0;
	case VIRTIO_RMEM_S_INVALID:
		return -EINVAL;
	case VIRTIO_RMEM_S_UNSUPPORTED:
		return -EOPNOTSUPP;
	case VIRTIO_RMEM_S_NOT_FOUND:
		return -ENOENT;
	case VIRTIO_RMEM_S_DENIED:
		return -EACCES;
	case VIRTIO_RMEM_S_BUSY:
		return -EBUSY;
	case VIRTIO_RMEM_S_NO_SPACE:
		return -ENOSPC;
	default: /* VIRTIO_RMEM_S_DEVICE_ERROR, or a status we do not know */
		return -EIO;
	}
}

/* Whether the ring has room for a chain of @needed descriptors. */
static bool rmem_req_room(struct rmem_dev *rdev, unsigned int needed)
{
	unsigned long flags;
	bool room;

	spin_lock_irqsave(&rdev->req_lock, flags);
	room = rdev->stopped || rdev->req_vq->num_free >= needed;
	spin_unlock_irqrestore(&rdev->req_lock, flags);
	return room;
}

/*
 * Sends @req_len bytes of @req as one chain with a writable part of
 * @resp_len bytes (none if 0) and waits for the device. Returns 0 when the
 * device answered, with the used length in @used and what it wrote in
 * @resp; -ENODEV when the device is gone or broken, -ETIMEDOUT when it did
 * not answer in time (it is broken from then on), -ENOMEM.
 */
int rmem_transact(struct rmem_dev *rdev, const void *req, size_t req_len,
		  void *resp, size_t resp_len, u32 *used)
{
	unsigned int timeout_ms = max_t(unsigned int,
					READ_ONCE(rmem_request_timeout_ms),
					RMEM_MIN_TIMEOUT_MS);
	unsigned long deadline = jiffies + msecs_to_jiffies(timeout_ms);
	struct scatterlist out_sg, in_sg, *sgs[2];
	unsigned int num_in = resp_len ? 1 : 0;
	enum rmem_req_owner owner;
	struct rmem_req *r;
	unsigned long flags;
	size_t size;
	long left;
	int err;

	if (!req_len)
		return -EINVAL;
	if (check_add_overflow(sizeof(*r), req_len, &size) ||
	    check_add_overflow(size, resp_len, &size))
		return -EINVAL;
	r = kzalloc(size, GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	init_completion(&r->done);
	r->out = r->data;
	r->in = r->data + req_len;
	memcpy(r->out, req, req_len);
	sg_init_one(&out_sg, r->out, req_len);
	sgs[0] = &out_sg;
	if (resp_len) {
		sg_init_one(&in_sg, r->in, resp_len);
		sgs[1] = &in_sg;
	}

	spin_lock_irqsave(&rdev->req_lock, flags);
	for (;;) {
		if (rdev->stopped) {
			err = rdev->stop_error;
			break;
		}
		err = virtqueue_add_sgs(rdev->req_vq, sgs, 1, num_in, r,
					GFP_ATOMIC);
		if (err != -ENOSPC)
			break;
		spin_unlock_irqrestore(&rdev->req_lock, flags);
		left = (long)(deadline - jiffies);
		if (left <= 0 ||
		    !wait_event_timeout(rdev->req_space,
					rmem_req_room(rdev, 1 + num_in), left)) {
			kfree(r);
			rmem_dev_set_broken(rdev, "no room in requestq in time");
			return -ETIMEDOUT;
		}
		spin_lock_irqsave(&rdev->req_lock, flags);
	}
	if (err) {
		spin_unlock_irqrestore(&rdev->req_lock, flags);
		kfree(r);
		return err;
	}
	r->owner = RMEM_REQ_WAITING;
	list_add_tail(&r->node, &rdev->inflight);
	/* Under the lock: remove() must never reset the device mid-notify. */
	virtqueue_kick(rdev->req_vq);
	spin_unlock_irqrestore(&rdev->req_lock, flags);

	left = (long)(deadline - jiffies);
	if (left > 0)
		wait_for_completion_timeout(&r->done, left);

	spin_lock_irqsave(&rdev->req_lock, flags);
	owner = r->owner;
	err = r->error;
	if (owner == RMEM_REQ_WAITING) {
		/* Timed out: the ring keeps the chain; the device is broken. */
		r->owner = RMEM_REQ_ABANDONED;
		err = -ETIMEDOUT;
	}
	spin_unlock_irqrestore(&rdev->req_lock, flags);

	if (owner == RMEM_REQ_WAITING) {
		rmem_dev_set_broken(rdev, "a request was not answered in time");
		return err;
	}
	if (owner == RMEM_REQ_ABANDONED)
		return err; /* failed while the device still holds the chain */
	if (!err) {
		*used = r->used;
		memcpy(resp, r->in, min_t(size_t, r->used, resp_len));
	}
	kfree(r);
	return err;
}

/*
 * rmem_transact() for a request of the spec: 0 when the device answered
 * OK with a whole response of @resp_len bytes, else the errno of its status
 * (rmem_status_errno()) or of the transport. A response that breaks the
 * protocol (a used length under 8, or over the room given, or an OK short
 * of the response) fails with -EIO and breaks the device: the driver can no
 * longer tell what the device did.
 */
int rmem_request(struct rmem_dev *rdev, const void *req, size_t req_len,
		 void *resp, size_t resp_len)
{
	const struct virtio_rmem_resp_hdr *hdr = resp;
	u32 used = 0, status;
	int err;

	err = rmem_transact(rdev, req, req_len, resp, resp_len, &used);
	if (err)
		return err;
	if (used < sizeof(*hdr) || used > resp_len) {
		rmem_dev_set_broken(rdev, "a response with a bad used length");
		return -EIO;
	}
	status = le32_to_cpu(hdr->status);
	if (status != VIRTIO_RMEM_S_OK) {
		if (status > VIRTIO_RMEM_S_DEVICE_ERROR)
			pr_warn_ratelimited("%s: unknown status %u\n",
					    rdev->name, status);
		return rmem_status_errno(status);
	}
	if (used != resp_len) {
		rmem_dev_set_broken(rdev, "an OK response shorter than its layout");
		return -EIO;
	}
	return 0;
}

/* requestq callback (interrupt context): completes the answered chains. */
void rmem_req_done(struct virtqueue *vq)
{
	struct rmem_dev *rdev = vq->vdev->priv;
	struct rmem_req *r;
	unsigned long flags;
	unsigned int len;

	spin_lock_irqsave(&rdev->req_lock, flags);
	do {
		virtqueue_disable_cb(vq);
		while ((r = virtqueue_get_buf(vq, &len))) {
			list_del(&r->node);
			if (r->owner == RMEM_REQ_ABANDONED) {
				kfree(r);
				continue;
			}
			r->used = len;
			r->error = 0;
			r->owner = RMEM_REQ_DONE;
			complete(&r->done);
		}
	} while (!virtqueue_enable_cb(vq));
	wake_up(&rdev->req_space);
	spin_unlock_irqrestore(&rdev->req_lock, flags);
}

/*
 * Fails every waiting request with @error; their chains stay in the ring
 * (and on @inflight) until the device returns them or the ring is torn
 * down. New requests fail with @error too. Any context. Returns whether
 * this call stopped the queue (false: it was stopped already).
 */
bool rmem_req_fail_all(struct rmem_dev *rdev, int error)
{
	struct rmem_req *r;
	unsigned long flags;
	bool first;

	spin_lock_irqsave(&rdev->req_lock, flags);
	first = !rdev->stopped;
	if (first) {
		rdev->stopped = true;
		rdev->stop_error = error;
	}
	list_for_each_entry(r, &rdev->inflight, node) {
		if (r->owner != RMEM_REQ_WAITING)
			continue;
		r->owner = RMEM_REQ_ABANDONED;
		r->error = error;
		complete(&r->done);
	}
	wake_up_all(&rdev->req_space);
	spin_unlock_irqrestore(&rdev->req_lock, flags);
	return first;
}

/* Whether requests can no longer be sent (removed or broken). */
bool rmem_dev_stopped(struct rmem_dev *rdev)
{
	unsigned long flags;
	bool stopped;

	spin_lock_irqsave(&rdev->req_lock, flags);
	stopped = rdev->stopped;
	spin_unlock_irqrestore(&rdev->req_lock, flags);
	return stopped;
}

/*
 * After the device was reset (it touches no ring any more): takes every
 * chain out of requestq, fails its caller with -ENODEV or frees it, and
 * stops every later use of the queue.
 */
void rmem_req_teardown(struct rmem_dev *rdev)
{
	struct rmem_req *r, *next;
	unsigned long flags;

	spin_lock_irqsave(&rdev->req_lock, flags);
	rdev->stopped = true;
	if (!rdev->stop_error)
		rdev->stop_error = -ENODEV;
	while ((r = virtqueue_detach_unused_buf(rdev->req_vq))) {
		list_del(&r->node);
		if (r->owner == RMEM_REQ_ABANDONED) {
			kfree(r);
			continue;
		}
		r->error = -ENODEV;
		r->owner = RMEM_REQ_DONE;
		complete(&r->done);
	}
	/* Nothing can be left: every chain on the list was in the ring. */
	list_for_each_entry_safe(r, next, &rdev->inflight, node) {
		WARN_ON_ONCE(1);
		list_del(&r->node);
		if (r->owner == RMEM_REQ_ABANDONED) {
			kfree(r);
			continue;
		}
		r->error = -ENODEV;
		r->owner = RMEM_REQ_DONE;
		complete(&r->done);
	}
	rdev->vqs_dead = true;
	wake_up_all(&rdev->req_space);
	spin_unlock_irqrestore(&rdev->req_lock, flags);
}

/* Gives eventq buffer @slot to the device; rdev->event_lock held. */
static int rmem_event_add_locked(struct rmem_dev *rdev,
				 struct virtio_rmem_event *slot)
{
	struct scatterlist sg;

	sg_init_one(&sg, slot, sizeof(*slot));
	return virtqueue_add_inbuf(rdev->event_vq, &sg, 1, slot, GFP_ATOMIC);
}

/* Fills eventq (after DRIVER_OK, so that the kick may notify). */
int rmem_events_start(struct rmem_dev *rdev)
{
	unsigned int n = min_t(unsigned int, RMEM_MAX_EVENT_BUFS,
			       virtqueue_get_vring_size(rdev->event_vq));
	unsigned long flags;
	unsigned int added = 0;

	rdev->event_bufs = kcalloc(n, sizeof(*rdev->event_bufs), GFP_KERNEL);
	if (!rdev->event_bufs)
		return -ENOMEM;
	rdev->nr_event_bufs = n;
	spin_lock_irqsave(&rdev->event_lock, flags);
	while (added < n && !rmem_event_add_locked(rdev, &rdev->event_bufs[added]))
		added++;
	virtqueue_kick(rdev->event_vq);
	spin_unlock_irqrestore(&rdev->event_lock, flags);
	/* A ring that took fewer buffers than it has slots is still usable. */
	return added ? 0 : -ENOSPC;
}

/* Before the reset: @event_work leaves eventq alone from now on. */
void rmem_events_stop(struct rmem_dev *rdev)
{
	unsigned long flags;

	spin_lock_irqsave(&rdev->event_lock, flags);
	rdev->events_dead = true;
	spin_unlock_irqrestore(&rdev->event_lock, flags);
}

/* After the reset: takes the buffers back. */
void rmem_events_teardown(struct rmem_dev *rdev)
{
	unsigned long flags;

	spin_lock_irqsave(&rdev->event_lock, flags);
	if (rdev->event_bufs)
		while (virtqueue_detach_unused_buf(rdev->event_vq))
			;
	spin_unlock_irqrestore(&rdev->event_lock, flags);
}

/* eventq callback (interrupt context). */
void rmem_event_done(struct virtqueue *vq)
{
	struct rmem_dev *rdev = vq->vdev->priv;

	schedule_work(&rdev->event_work);
}

static void rmem_event_from_wire(struct rmem_event *ev,
				 const struct virtio_rmem_event *w)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = le32_to_cpu(w->type);
	ev->reason = le32_to_cpu(w->reason);
	ev->handle = le64_to_cpu(w->handle);
	ev->buffer = le64_to_cpu(w->buffer);
	ev->size = le64_to_cpu(w->size);
	ev->peer = le32_to_cpu(w->peer);
	ev->rights = le32_to_cpu(w->rights);
	ev->kind = le32_to_cpu(w->kind);
	ev->heap = le32_to_cpu(w->heap);
	ev->dropped = le32_to_cpu(w->dropped);
}

void rmem_event_work(struct work_struct *work)
{
	struct rmem_dev *rdev = container_of(work, struct rmem_dev, event_work);
	struct virtio_rmem_event *slot, wire;
	struct rmem_event ev;
	unsigned long flags;
	unsigned int len;
	bool ok;

	for (;;) {
		spin_lock_irqsave(&rdev->event_lock, flags);
		if (rdev->events_dead) {
			spin_unlock_irqrestore(&rdev->event_lock, flags);
			return;
		}
		slot = virtqueue_get_buf(rdev->event_vq, &len);
		if (!slot) {
			spin_unlock_irqrestore(&rdev->event_lock, flags);
			return;
		}
		ok = len == sizeof(wire);
		if (ok)
			memcpy(&wire, slot, sizeof(wire));
		else
			rdev->events_short++;
		/* The copy is ours: the device may reuse the buffer now. */
		if (rmem_event_add_locked(rdev, slot))
			pr_warn_ratelimited("%s: an eventq buffer could not be given back\n",
					    rdev->name);
		virtqueue_kick(rdev->event_vq);
		spin_unlock_irqrestore(&rdev->event_lock, flags);

		if (!ok) {
			pr_warn_ratelimited("%s: event with used length %u ignored\n",
					    rdev->name, len);
			continue;
		}
		rmem_bufs_apply_event(rdev, &wire);
		rmem_event_from_wire(&ev, &wire);
		rmem_evq_push(rdev, &ev);
	}
}

/*
 * Queues @ev for readers. A full queue drops the new event and adds it to
 * the count that the next queued event carries in @dropped.
 */
void rmem_evq_push(struct rmem_dev *rdev, const struct rmem_event *ev)
{
	struct rmem_event *slot;
	unsigned long flags;
	u64 lost;

	spin_lock_irqsave(&rdev->evq_lock, flags);
	if (rdev->evq_count == RMEM_EVENT_QUEUE_LEN) {
		lost = (u64)rdev->evq_dropped + ev->dropped + 1;
		rdev->evq_dropped = min_t(u64, lost, U32_MAX);
		spin_unlock_irqrestore(&rdev->evq_lock, flags);
		return;
	}
	slot = &rdev->evq[(rdev->evq_head + rdev->evq_count) %
			  RMEM_EVENT_QUEUE_LEN];
	*slot = *ev;
	lost = (u64)rdev->evq_dropped + ev->dropped;
	slot->dropped = min_t(u64, lost, U32_MAX);
	rdev->evq_dropped = 0;
	rdev->evq_count++;
	spin_unlock_irqrestore(&rdev->evq_lock, flags);
	wake_up_interruptible(&rdev->evq_wait);
}
