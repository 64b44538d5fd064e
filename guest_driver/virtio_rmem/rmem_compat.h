/* SPDX-License-Identifier: GPL-2.0 */
/*
 * virtio_rmem: the kernel API differences between Debian 12's 6.1 (which
 * the test SoC boots) and newer kernels, in one place. Each guard names the
 * release that changed the API. Only 6.1 is built and run here; the newer
 * branches follow the upstream headers of those releases.
 */
#ifndef RMEM_DRIVER_RMEM_COMPAT_H
#define RMEM_DRIVER_RMEM_COMPAT_H

#include <linux/mm.h>
#include <linux/module.h>
#include <linux/version.h>
#include <linux/virtio_config.h>

/*
 * Whether the kernel built against is release @major.@minor or later. The
 * one use of LINUX_VERSION_CODE (checkpatch warns about it: in-tree code
 * has no use for it, an out-of-tree module spanning releases does).
 */
#define RMEM_KERNEL_AT_LEAST(major, minor) \
	(KERNEL_VERSION(major, minor, 0) <= LINUX_VERSION_CODE)

/* 6.13: the namespace of MODULE_IMPORT_NS() became a string literal. */
#if RMEM_KERNEL_AT_LEAST(6, 13)
#define RMEM_IMPORT_NS_DMA_BUF()	MODULE_IMPORT_NS("DMA_BUF")
#else
#define RMEM_IMPORT_NS_DMA_BUF()	MODULE_IMPORT_NS(DMA_BUF)
#endif

/*
 * 6.18: dma_heap_add() is exported to modules (namespace DMA_BUF_HEAP);
 * before, a module cannot add a dma-buf heap at all.
 */
#if RMEM_KERNEL_AT_LEAST(6, 18)
#define RMEM_HAVE_DMA_HEAP 1
#else
#define RMEM_HAVE_DMA_HEAP 0
#endif

/* 6.3: vm_flags is read-only; vm_flags_mod() changes it. */
static inline void rmem_vma_flags_mod(struct vm_area_struct *vma,
				      vm_flags_t set, vm_flags_t clear)
{
#if RMEM_KERNEL_AT_LEAST(6, 3)
	vm_flags_mod(vma, set, clear);
#else
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
#endif
}

/* 6.11: virtio_find_vqs() takes struct virtqueue_info[]. */
static inline int rmem_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
				struct virtqueue *vqs[],
				vq_callback_t *callbacks[],
				const char * const names[])
{
#if RMEM_KERNEL_AT_LEAST(6, 11)
	struct virtqueue_info info[4] = {};
	unsigned int i;

	if (nvqs > ARRAY_SIZE(info))
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		info[i].name = names[i];
		info[i].callback = callbacks[i];
	}
	return virtio_find_vqs(vdev, nvqs, vqs, info, NULL);
#else
	return virtio_find_vqs(vdev, nvqs, vqs, callbacks, names, NULL);
#endif
}

#endif /* RMEM_DRIVER_RMEM_COMPAT_H */
