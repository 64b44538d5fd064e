/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause */
/*
 * /dev/rmem-carveout: the host module's interface for rmemd
 * (host_driver/rmem_carveout, README.md there).
 *
 * Besides read() (the listing) and mmap() at a physical address, which only
 * rmemd itself uses, the device issues *pieces*: a file of its own for one
 * page-aligned range inside one carve-out, with exactly one right. rmemd
 * hands a piece -- never the device -- to a VMM (vhost-user SHMEM_MAP), so a
 * VMM can map only what its guest was granted, read-only where the grant is
 * read-only, and only until rmemd revokes it.
 *
 * RMEM_CARVEOUT_IOC_PIECE (device opened O_RDWR):
 *   in:  phys, size: page aligned, non-zero, inside one carve-out;
 *        flags: RMEM_CARVEOUT_PIECE_WRITE or 0.
 *   out: fd: a new O_CLOEXEC descriptor of the piece, opened O_RDWR with
 *        RMEM_CARVEOUT_PIECE_WRITE, else O_RDONLY.
 *   EINVAL: a bad range or unknown flags; EBADF: the device is not open for
 *   writing; EMFILE/ENFILE/ENOMEM as for open().
 *
 * A piece file: mmap(MAP_SHARED) at offset 0..size (page aligned, within the
 * piece); PROT_WRITE only on a writable piece (EACCES otherwise, and no
 * later mprotect() can add it); MAP_PRIVATE: EINVAL; a revoked piece:
 * ENODEV. fstat() gives its size. A mapping's pages are inserted at its first
 * access.
 *
 * RMEM_CARVEOUT_IOC_REVOKE (on the device fd that issued the piece; the
 * argument is a pointer to the piece's fd): every mapping of the piece, in
 * every process, is torn down (an access afterwards: SIGBUS; KVM: its
 * stage-2 mappings go through the MMU notifier) and the piece cannot be
 * mapped again. Idempotent. EBADF: not an fd; EINVAL: not a piece; EPERM:
 * a piece another open of the device issued.
 *
 * When the device file that issued pieces is released (rmemd exits, or
 * crashes), every piece it issued is revoked.
 */
#ifndef RMEM_HOST_UAPI_RMEM_CARVEOUT_H
#define RMEM_HOST_UAPI_RMEM_CARVEOUT_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define RMEM_CARVEOUT_PIECE_WRITE (1U << 0)

struct rmem_carveout_piece {
	__u64 phys;
	__u64 size;
	__u32 flags;
	__s32 fd;
};

#define RMEM_CARVEOUT_IOC_MAGIC 0xC7
#define RMEM_CARVEOUT_IOC_PIECE \
	_IOWR(RMEM_CARVEOUT_IOC_MAGIC, 0x01, struct rmem_carveout_piece)
#define RMEM_CARVEOUT_IOC_REVOKE _IOW(RMEM_CARVEOUT_IOC_MAGIC, 0x02, __s32)

#endif /* RMEM_HOST_UAPI_RMEM_CARVEOUT_H */
