/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause */
/*
 * virtio-rmem: the restricted-memory device (docs/virtio-rmem.md).
 *
 * The single source of the device's wire layouts, shared by the device
 * (rmemd, C++) and the driver (guest_driver/, Linux kernel C). Every field is
 * little-endian, every structure naturally aligned with explicit reserved
 * fields, and the sizes are fixed by the static asserts at the end: a change
 * here that moves a byte fails to compile on both sides.
 */
#ifndef VIRTIO_RMEM_UAPI_VIRTIO_RMEM_H
#define VIRTIO_RMEM_UAPI_VIRTIO_RMEM_H

#include <linux/types.h>

/* Device ID: not assigned by OASIS; see docs/virtio-rmem.md, "Device ID". */
#define VIRTIO_ID_RMEM 0xbf00

/* Feature bits (device-specific range 0..23). */
#define VIRTIO_RMEM_F_LEND_DONATE 0    /* LEND and DONATE requests */
#define VIRTIO_RMEM_F_RECLAIM_REVOKE 1 /* RECLAIM with VIRTIO_RMEM_RECLAIM_REVOKE */

/* Virtqueues. */
#define VIRTIO_RMEM_VQ_REQUEST 0
#define VIRTIO_RMEM_VQ_EVENT 1
#define VIRTIO_RMEM_NUM_VQS 2

/* The shared memory region in which buffers appear. */
#define VIRTIO_RMEM_SHM_BUFFERS 0

/* Sizes of the text fields (NUL-padded, not necessarily NUL-terminated). */
#define VIRTIO_RMEM_NAME_SIZE 32

/* Rights on a buffer (the rights field of requests, responses and events). */
#define VIRTIO_RMEM_RIGHT_READ (1u << 0)
#define VIRTIO_RMEM_RIGHT_WRITE (1u << 1)
#define VIRTIO_RMEM_RIGHT_CPU_MAP (1u << 2) /* the buffer appears in the region */
#define VIRTIO_RMEM_RIGHTS_ALL 0x7u

/* shm_offset of a buffer that is not CPU-mapped (device-only access). */
#define VIRTIO_RMEM_NO_OFFSET 0xffffffffffffffffull
/* A quota that does not limit. */
#define VIRTIO_RMEM_UNLIMITED 0xffffffffffffffffull

struct virtio_rmem_config {
	__le32 vm_id;         /* this guest's VM id, as peers name it */
	__le32 num_heaps;     /* GET_HEAP indexes 0 .. num_heaps - 1 */
	__le32 num_peers;     /* GET_PEER indexes 0 .. num_peers - 1 */
	__le32 max_receivers; /* most receivers in one SHARE or LEND, >= 1 */
	__le64 quota_bytes;   /* this VM over all heaps, or UNLIMITED */
};

/* Request types. */
#define VIRTIO_RMEM_REQ_GET_HEAP 0x0001
#define VIRTIO_RMEM_REQ_GET_PEER 0x0002
#define VIRTIO_RMEM_REQ_ALLOC 0x0010
#define VIRTIO_RMEM_REQ_FREE 0x0011
#define VIRTIO_RMEM_REQ_SHARE 0x0012
#define VIRTIO_RMEM_REQ_LEND 0x0013
#define VIRTIO_RMEM_REQ_DONATE 0x0014
#define VIRTIO_RMEM_REQ_RETRIEVE 0x0020
#define VIRTIO_RMEM_REQ_RELINQUISH 0x0021
#define VIRTIO_RMEM_REQ_RECLAIM 0x0022

/* Response status codes. */
#define VIRTIO_RMEM_S_OK 0
#define VIRTIO_RMEM_S_INVALID 1     /* malformed: length, reserved, flags, sizes */
#define VIRTIO_RMEM_S_UNSUPPORTED 2 /* unknown type, or its feature not negotiated */
#define VIRTIO_RMEM_S_NOT_FOUND 3   /* no such heap, peer, buffer or handle for you */
#define VIRTIO_RMEM_S_DENIED 4      /* policy: may not allocate, rights too wide */
#define VIRTIO_RMEM_S_BUSY 5        /* state: an open offer, already retrieved, held */
#define VIRTIO_RMEM_S_NO_SPACE 6    /* a quota, the heap, or the region is full */
#define VIRTIO_RMEM_S_DEVICE_ERROR 7 /* the device failed; state unchanged */

/* Every request starts with this header, every response with the next. */
struct virtio_rmem_req_hdr {
	__le32 type;
	__le32 reserved; /* 0 */
};

struct virtio_rmem_resp_hdr {
	__le32 status;
	__le32 reserved; /* 0 */
};

/* GET_HEAP */
struct virtio_rmem_req_get_heap {
	struct virtio_rmem_req_hdr hdr;
	__le32 heap;     /* index */
	__le32 reserved; /* 0 */
};

/* Heap flags. */
#define VIRTIO_RMEM_HEAP_F_CPU_MAP (1u << 0)   /* buffers may be CPU-mapped */
#define VIRTIO_RMEM_HEAP_F_MAY_ALLOC (1u << 1) /* this VM may allocate here */
#define VIRTIO_RMEM_HEAP_F_REVOKE (1u << 2)    /* owners may reclaim with revoke */

struct virtio_rmem_resp_get_heap {
	struct virtio_rmem_resp_hdr hdr;
	__u8 name[VIRTIO_RMEM_NAME_SIZE];     /* e.g. "secure-video" */
	__u8 use_case[VIRTIO_RMEM_NAME_SIZE]; /* the carve-out's rmem,use-case */
	__le64 size_bytes;                    /* total of the heap's carve-outs */
	__le64 free_bytes;                    /* at the time of the response */
	__le64 max_align;                     /* largest ALLOC alignment, a power of 2 */
	__le64 quota_bytes;                   /* this VM on this heap, or UNLIMITED */
	__le32 flags;                         /* VIRTIO_RMEM_HEAP_F_* */
	__le32 rights;                        /* this VM's ceiling on the heap */
};

/* GET_PEER: the VMs this VM may name as receivers. */
struct virtio_rmem_req_get_peer {
	struct virtio_rmem_req_hdr hdr;
	__le32 peer;     /* index */
	__le32 reserved; /* 0 */
};

struct virtio_rmem_resp_get_peer {
	struct virtio_rmem_resp_hdr hdr;
	__le32 vm_id;
	__le32 reserved; /* 0 */
	__u8 name[VIRTIO_RMEM_NAME_SIZE];
};

/* ALLOC */
struct virtio_rmem_req_alloc {
	struct virtio_rmem_req_hdr hdr;
	__le32 heap;     /* index */
	__le32 flags;    /* 0 */
	__le64 size;     /* bytes, > 0; rounded up to 4 KiB */
	__le64 align;    /* 0 (4 KiB) or a power of 2 <= the heap's max_align */
};

struct virtio_rmem_resp_alloc {
	struct virtio_rmem_resp_hdr hdr;
	__le64 buffer;     /* the buffer's id, for its owner */
	__le64 size;       /* as allocated */
	__le64 shm_offset; /* in region VIRTIO_RMEM_SHM_BUFFERS, or NO_OFFSET */
	__le32 rights;     /* the owner's */
	__le32 reserved;   /* 0 */
};

/* FREE */
struct virtio_rmem_req_free {
	struct virtio_rmem_req_hdr hdr;
	__le64 buffer;
};

/* SHARE and LEND: a header and num_receivers of these, nothing more. */
struct virtio_rmem_receiver {
	__le32 vm_id;
	__le32 rights; /* VIRTIO_RMEM_RIGHT_*, read and/or write required */
};

struct virtio_rmem_req_share {
	struct virtio_rmem_req_hdr hdr;
	__le64 buffer;
	__le32 num_receivers; /* 1 .. max_receivers */
	__le32 reserved;      /* 0 */
	/* struct virtio_rmem_receiver receivers[num_receivers]; */
};

/* DONATE */
struct virtio_rmem_req_donate {
	struct virtio_rmem_req_hdr hdr;
	__le64 buffer;
	__le32 vm_id;
	__le32 reserved; /* 0 */
};

/* The response to SHARE, LEND and DONATE. */
struct virtio_rmem_resp_offer {
	struct virtio_rmem_resp_hdr hdr;
	__le64 handle; /* what the receivers RETRIEVE; useless to anyone else */
};

/* RETRIEVE and RELINQUISH */
struct virtio_rmem_req_handle {
	struct virtio_rmem_req_hdr hdr;
	__le64 handle;
};

/* Offer kinds (responses and events). */
#define VIRTIO_RMEM_KIND_SHARE 1
#define VIRTIO_RMEM_KIND_LEND 2
#define VIRTIO_RMEM_KIND_DONATE 3

struct virtio_rmem_resp_retrieve {
	struct virtio_rmem_resp_hdr hdr;
	__le64 size;
	__le64 shm_offset; /* in region VIRTIO_RMEM_SHM_BUFFERS, or NO_OFFSET */
	__le64 buffer;     /* DONATE: the buffer's id, now yours; otherwise 0 */
	__le32 owner;      /* the sender's VM id */
	__le32 rights;     /* as offered */
	__le32 kind;       /* VIRTIO_RMEM_KIND_* */
	__le32 reserved;   /* 0 */
};

/* RECLAIM */
#define VIRTIO_RMEM_RECLAIM_REVOKE (1u << 0)

struct virtio_rmem_req_reclaim {
	struct virtio_rmem_req_hdr hdr;
	__le64 buffer;
	__le32 flags;    /* VIRTIO_RMEM_RECLAIM_* */
	__le32 reserved; /* 0 */
};

struct virtio_rmem_resp_reclaim {
	struct virtio_rmem_resp_hdr hdr;
	__le64 shm_offset; /* where the owner sees it now, or NO_OFFSET */
};

/* Events, written by the device into eventq buffers. */
#define VIRTIO_RMEM_EVENT_OFFERED 1      /* to a receiver */
#define VIRTIO_RMEM_EVENT_RETRIEVED 2    /* to the owner */
#define VIRTIO_RMEM_EVENT_RELINQUISHED 3 /* to the owner */
#define VIRTIO_RMEM_EVENT_REVOKED 4      /* to a receiver */
#define VIRTIO_RMEM_EVENT_DONATED 5      /* to the donor */

#define VIRTIO_RMEM_REASON_REQUEST 0   /* the peer asked for it */
#define VIRTIO_RMEM_REASON_PEER_GONE 1 /* the peer VM went away */

struct virtio_rmem_event {
	__le32 type;     /* VIRTIO_RMEM_EVENT_* */
	__le32 reason;   /* VIRTIO_RMEM_REASON_* */
	__le64 handle;
	__le64 buffer;   /* owner-side events; 0 in receivers' events */
	__le64 size;
	__le32 peer;     /* the other side's VM id */
	__le32 rights;   /* as offered */
	__le32 kind;     /* VIRTIO_RMEM_KIND_* */
	__le32 heap;     /* index */
	__le32 dropped;  /* events lost before this one (a full queue) */
	__le32 reserved; /* 0 */
};

/* The layouts above, byte for byte, on both sides. */
#ifdef __cplusplus
#define VIRTIO_RMEM_ASSERT_SIZE(type, size) static_assert(sizeof(type) == (size), #type)
#else
#define VIRTIO_RMEM_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type)
#endif
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_config, 24);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_hdr, 8);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_resp_hdr, 8);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_get_heap, 16);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_resp_get_heap, 112);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_get_peer, 16);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_resp_get_peer, 48);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_alloc, 32);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_resp_alloc, 40);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_free, 16);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_receiver, 8);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_share, 24);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_donate, 24);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_resp_offer, 16);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_handle, 16);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_resp_retrieve, 48);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_req_reclaim, 24);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_resp_reclaim, 16);
VIRTIO_RMEM_ASSERT_SIZE(struct virtio_rmem_event, 56);
#undef VIRTIO_RMEM_ASSERT_SIZE

#endif /* VIRTIO_RMEM_UAPI_VIRTIO_RMEM_H */
