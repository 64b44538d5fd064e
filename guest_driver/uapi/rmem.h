/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause */
/*
 * /dev/rmem: the user-space interface of the virtio-rmem guest driver
 * (guest_driver/virtio_rmem, guest_driver/README.md).
 *
 * A buffer of restricted memory is a dma-buf: ALLOC and RETRIEVE return a
 * dma-buf file descriptor, and every request about a buffer takes one. The
 * device's buffer ids and handles are 64-bit numbers that only mean
 * something to the VMs the device gave them to (docs/virtio-rmem.md).
 *
 * Every ioctl returns 0 or -1 with errno. The device's status codes map to
 * errno one to one:
 *
 *   VIRTIO_RMEM_S_INVALID      EINVAL      malformed request
 *   VIRTIO_RMEM_S_UNSUPPORTED  EOPNOTSUPP  unknown request or feature not negotiated
 *   VIRTIO_RMEM_S_NOT_FOUND    ENOENT      no such heap, peer, buffer or handle for this VM
 *   VIRTIO_RMEM_S_DENIED       EACCES      policy
 *   VIRTIO_RMEM_S_BUSY         EBUSY       state (open offer, already retrieved, held)
 *   VIRTIO_RMEM_S_NO_SPACE     ENOSPC      quota, heap or shared memory region full
 *   VIRTIO_RMEM_S_DEVICE_ERROR EIO         the device failed; nothing changed
 *
 * and the driver adds: ENODEV (the device was removed, or is broken: it
 * stopped answering, said it needs a reset or broke the protocol; every
 * buffer is then unusable), ETIMEDOUT (this request was not answered in
 * request_timeout_ms: the device is broken from now on), EIO (an answer
 * that breaks the protocol), EBUSY / ENXIO from the driver's own view of a
 * buffer (see RMEM_IOC_BUF_INFO), EBADF / EINVAL (an fd that is not an
 * open dma-buf of this device), EFAULT, ENOMEM, EPERM (RMEM_IOC_RAW without
 * CAP_SYS_ADMIN or the module parameter).
 *
 * read() returns struct rmem_event records (whole records only; EAGAIN
 * with O_NONBLOCK when none is queued); poll() reports EPOLLIN when one is
 * queued and EPOLLHUP | EPOLLERR once the device is gone.
 *
 * All structures have fixed layouts on every architecture; reserved fields
 * and flags not defined here must be 0 (else EINVAL).
 */
#ifndef RMEM_UAPI_RMEM_H
#define RMEM_UAPI_RMEM_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Rights on a buffer: the same bits as the device's VIRTIO_RMEM_RIGHT_*. */
#define RMEM_RIGHT_READ		0x1U
#define RMEM_RIGHT_WRITE	0x2U
#define RMEM_RIGHT_CPU_MAP	0x4U	/* may be mmap()ed at all */

/* Heap flags (struct rmem_heap_info.flags), the device's HEAP_F_*. */
#define RMEM_HEAP_F_CPU_MAP	0x1U	/* buffers may be CPU-mapped */
#define RMEM_HEAP_F_MAY_ALLOC	0x2U	/* this VM may allocate here */
#define RMEM_HEAP_F_REVOKE	0x4U	/* owners may reclaim with revoke */

/* Device feature bits (struct rmem_info.features), as negotiated. */
#define RMEM_FEATURE_LEND_DONATE	0x1ULL
#define RMEM_FEATURE_RECLAIM_REVOKE	0x2ULL

/* Offer kinds. */
#define RMEM_KIND_SHARE		1
#define RMEM_KIND_LEND		2
#define RMEM_KIND_DONATE	3

/* Quota and offset values that mean "none". */
#define RMEM_UNLIMITED		0xffffffffffffffffULL

#define RMEM_NAME_SIZE		32

/* RMEM_IOC_INFO: the device's configuration and the driver's view of it. */
#define RMEM_INFO_F_BROKEN	0x1U	/* requests fail with ENODEV */

struct rmem_info {
	__u32 vm_id;		/* this VM's id, as peers name it */
	__u32 num_heaps;
	__u32 num_peers;
	__u32 max_receivers;	/* most receivers in one SHARE or LEND */
	__u64 quota_bytes;	/* this VM over all heaps, or RMEM_UNLIMITED */
	__u64 features;		/* RMEM_FEATURE_* negotiated */
	__u64 shm_size;		/* bytes of the shared memory region, 0 if none */
	__u32 flags;		/* RMEM_INFO_F_* */
	__u32 reserved;
};

/* RMEM_IOC_GET_HEAP: heap @index, 0 .. num_heaps - 1 (GET_HEAP). */
struct rmem_heap_info {
	__u32 index;		/* in */
	__u32 flags;		/* out: RMEM_HEAP_F_* */
	__u32 rights;		/* out: this VM's rights ceiling on the heap */
	__u32 reserved;
	char name[RMEM_NAME_SIZE];	/* out: NUL-terminated */
	char use_case[RMEM_NAME_SIZE];	/* out: NUL-terminated */
	__u64 size_bytes;	/* out: total */
	__u64 free_bytes;	/* out: at the time of the request */
	__u64 max_align;	/* out: largest alignment ALLOC accepts */
	__u64 quota_bytes;	/* out: this VM on this heap, or RMEM_UNLIMITED */
};

/* RMEM_IOC_GET_PEER: the VMs this VM may name as receivers (GET_PEER). */
struct rmem_peer_info {
	__u32 index;		/* in: 0 .. num_peers - 1 */
	__u32 vm_id;		/* out */
	char name[RMEM_NAME_SIZE];	/* out: NUL-terminated */
};

/*
 * RMEM_IOC_ALLOC: a new zeroed buffer owned by this VM, as a dma-buf. The
 * fd is close-on-exec, opened read-write if the owner's rights include
 * RMEM_RIGHT_WRITE, else read-only.
 */
struct rmem_alloc {
	__u32 heap;		/* in: heap index */
	__u32 flags;		/* in: 0 */
	__u64 size;		/* in: bytes (> 0); out: as allocated (4 KiB multiple) */
	__u64 align;		/* in: 0 (4 KiB) or a power of two <= max_align */
	__u64 buffer;		/* out: the device's buffer id */
	__s32 fd;		/* out: the dma-buf */
	__u32 rights;		/* out: RMEM_RIGHT_* the owner has */
};

/* A receiver of a SHARE or LEND, and the rights offered to it. */
struct rmem_receiver {
	__u32 vm_id;
	__u32 rights;		/* RMEM_RIGHT_*: read and/or write, maybe CPU map */
};

/*
 * RMEM_IOC_SHARE, RMEM_IOC_LEND: offers an owned buffer to receivers. After
 * LEND the owner cannot use the buffer (its mappings are gone, mmap fails
 * with EBUSY) until RECLAIM.
 */
struct rmem_offer {
	__s32 fd;		/* in: an owned buffer's dma-buf */
	__u32 num_receivers;	/* in: 1 .. max_receivers */
	__u64 receivers;	/* in: user pointer to struct rmem_receiver[] */
	__u64 handle;		/* out: what the receivers RETRIEVE */
};

/* RMEM_IOC_DONATE: offers ownership to one VM; the donor loses access. */
struct rmem_donate {
	__s32 fd;		/* in: an owned buffer's dma-buf */
	__u32 vm_id;		/* in */
	__u64 handle;		/* out */
};

/*
 * RMEM_IOC_RETRIEVE: takes an offer addressed to this VM. A share or lend
 * gives a borrowed buffer; a donation an owned one (@buffer is its id).
 */
struct rmem_retrieve {
	__u64 handle;		/* in */
	__u64 size;		/* out */
	__u64 buffer;		/* out: DONATE: the buffer's id, now ours; else 0 */
	__s32 fd;		/* out: the dma-buf (close-on-exec) */
	__u32 rights;		/* out: as offered */
	__u32 owner;		/* out: the sender's VM id */
	__u32 kind;		/* out: RMEM_KIND_* */
};

/*
 * RMEM_IOC_RELINQUISH: gives a retrieved share or lend back. By fd (the
 * borrowed dma-buf, which stays open but unusable), or with fd = -1 by
 * handle: the driver's own buffer for that handle if it has one, else the
 * request goes to the device as it is (which answers for itself).
 */
struct rmem_relinquish {
	__s32 fd;
	__u32 flags;		/* 0 */
	__u64 handle;		/* when fd is -1 */
};

/* RMEM_IOC_RECLAIM: closes an owned buffer's open offer. */
#define RMEM_RECLAIM_REVOKE	0x1U	/* take it from receivers that hold it */

struct rmem_reclaim {
	__s32 fd;
	__u32 flags;		/* RMEM_RECLAIM_* */
};

/* RMEM_IOC_FREE: frees an owned buffer; its dma-buf stays open, unusable. */
struct rmem_free {
	__s32 fd;
	__u32 reserved;
};

/* RMEM_IOC_BUF_INFO: what the driver knows about one of its dma-bufs. */
#define RMEM_ROLE_OWNER		1	/* allocated here, or donated to us */
#define RMEM_ROLE_BORROWER	2	/* a retrieved share or lend */

#define RMEM_STATE_ACCESSIBLE	1	/* CPU-mappable now (if the rights say so) */
#define RMEM_STATE_OFFERED	2	/* owner: shared; still accessible */
#define RMEM_STATE_AWAY		3	/* owner: lent or being donated */
#define RMEM_STATE_GONE		4	/* freed, relinquished, revoked, donated, device gone */
#define RMEM_STATE_NO_OFFSET	5	/* owner: reclaimed, but the device gave no new offset */

struct rmem_buf_info {
	__s32 fd;		/* in */
	__u32 role;		/* out: RMEM_ROLE_* */
	__u64 size;		/* out */
	__u64 buffer;		/* out: owner: the buffer id; borrower: 0 */
	__u64 handle;		/* out: owner: the open offer's; borrower: ours */
	__u32 rights;		/* out */
	__u32 state;		/* out: RMEM_STATE_* */
	__u32 kind;		/* out: that offer's RMEM_KIND_*, or 0 */
	__u32 peer;		/* out: borrower: the owner's VM id; else 0 */
};

/*
 * Events, read() from /dev/rmem: the device's events as they arrived, one
 * queue per device shared by its readers (each event goes to one reader).
 * The driver keeps at most 256; @dropped counts events lost before this
 * one (by the device or by the driver's full queue).
 */
#define RMEM_EVENT_OFFERED	1	/* to a receiver: @handle offered to us */
#define RMEM_EVENT_RETRIEVED	2	/* to the owner: a receiver retrieved */
#define RMEM_EVENT_RELINQUISHED	3	/* to the owner: a receiver gave it back */
#define RMEM_EVENT_REVOKED	4	/* to a receiver: gone (mappings already zapped) */
#define RMEM_EVENT_DONATED	5	/* to the donor: the buffer is no longer ours */

#define RMEM_REASON_REQUEST	0	/* the peer asked for it */
#define RMEM_REASON_PEER_GONE	1	/* the peer VM went away */

struct rmem_event {
	__u32 type;		/* RMEM_EVENT_* */
	__u32 reason;		/* RMEM_REASON_* */
	__u64 handle;
	__u64 buffer;		/* owner-side events; 0 in receivers' events */
	__u64 size;
	__u32 peer;		/* the other side's VM id */
	__u32 rights;		/* as offered */
	__u32 kind;		/* RMEM_KIND_* */
	__u32 heap;		/* heap index */
	__u32 dropped;		/* events lost before this one */
	__u32 reserved;
};

/*
 * RMEM_IOC_RAW (TEST ONLY): sends @req_len bytes as a request chain with a
 * writable part of @resp_len bytes (0: none), exactly as given, and returns
 * what the device wrote. Needs CAP_SYS_ADMIN and the module parameter
 * raw_requests=1, else EPERM. The driver does not track what a raw request
 * does: a raw FREE of a buffer the driver holds leaves the driver wrong.
 */
#define RMEM_RAW_MAX		4096

struct rmem_raw {
	__u64 req;		/* in: user pointer to the request bytes */
	__u64 resp;		/* in: user pointer to room for the response */
	__u32 req_len;		/* in: 1 .. RMEM_RAW_MAX */
	__u32 resp_len;		/* in: 0 .. RMEM_RAW_MAX */
	__u32 used_len;		/* out: the device's used length */
	__u32 reserved;
};

#define RMEM_IOC_MAGIC		'R'
#define RMEM_IOC_INFO		_IOR(RMEM_IOC_MAGIC, 0x80, struct rmem_info)
#define RMEM_IOC_GET_HEAP	_IOWR(RMEM_IOC_MAGIC, 0x81, struct rmem_heap_info)
#define RMEM_IOC_GET_PEER	_IOWR(RMEM_IOC_MAGIC, 0x82, struct rmem_peer_info)
#define RMEM_IOC_ALLOC		_IOWR(RMEM_IOC_MAGIC, 0x83, struct rmem_alloc)
#define RMEM_IOC_FREE		_IOW(RMEM_IOC_MAGIC, 0x84, struct rmem_free)
#define RMEM_IOC_SHARE		_IOWR(RMEM_IOC_MAGIC, 0x85, struct rmem_offer)
#define RMEM_IOC_LEND		_IOWR(RMEM_IOC_MAGIC, 0x86, struct rmem_offer)
#define RMEM_IOC_DONATE		_IOWR(RMEM_IOC_MAGIC, 0x87, struct rmem_donate)
#define RMEM_IOC_RETRIEVE	_IOWR(RMEM_IOC_MAGIC, 0x88, struct rmem_retrieve)
#define RMEM_IOC_RELINQUISH	_IOW(RMEM_IOC_MAGIC, 0x89, struct rmem_relinquish)
#define RMEM_IOC_RECLAIM	_IOW(RMEM_IOC_MAGIC, 0x8a, struct rmem_reclaim)
#define RMEM_IOC_BUF_INFO	_IOWR(RMEM_IOC_MAGIC, 0x8b, struct rmem_buf_info)
#define RMEM_IOC_RAW		_IOWR(RMEM_IOC_MAGIC, 0x8f, struct rmem_raw)

#endif /* RMEM_UAPI_RMEM_H */
