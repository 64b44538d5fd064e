// SPDX-License-Identifier: GPL-2.0
/*
 * virtio_rmem: one dma-buf heap per device heap this VM may allocate from,
 * /dev/dma_heap/rmem-<heap name>, allocating exactly as RMEM_IOC_ALLOC.
 *
 * Only from Linux 6.18, which exports dma_heap_add() to modules (namespace
 * DMA_BUF_HEAP); before, a module cannot add a heap and this file compiles
 * to nothing (Debian 12's 6.1, which the test SoC runs, does not even have
 * CONFIG_DMABUF_HEAPS). The 6.18 code is not built or run here.
 *
 * The kernel cannot remove a dma-buf heap. So a heap, once added, stays
 * for the life of the kernel, and the module pins itself in memory the
 * first time it adds one. Each heap is a slot named after the device's
 * heap; the device that provides it binds the slot, remove() unbinds it
 * (allocations then fail with ENODEV) and a device probed later with the
 * same heap name binds it again.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "rmem.h"
#include "rmem_compat.h"

#if RMEM_HAVE_DMA_HEAP

#include <linux/dma-heap.h>

MODULE_IMPORT_NS("DMA_BUF_HEAP");

struct rmem_heap_slot {
	struct list_head node;
	char name[RMEM_NAME_SIZE + 8];	/* "rmem-<heap>", as the heap keeps it */
	struct dma_heap *heap;
	struct rmem_dev *rdev;		/* NULL while unbound (rmem_heaps_lock) */
	u32 index;			/* the device's heap index */
};

static DEFINE_MUTEX(rmem_heaps_lock);
static LIST_HEAD(rmem_heap_slots);
static bool rmem_heaps_pinned;

static struct dma_buf *rmem_heap_allocate(struct dma_heap *heap,
					  unsigned long len, u32 fd_flags,
					  u64 heap_flags)
{
	struct rmem_heap_slot *slot = dma_heap_get_drvdata(heap);
	struct rmem_alloc args = { .size = len };
	struct rmem_dev *rdev;
	struct dma_buf *dmabuf;
	int err;

	if (heap_flags)
		return ERR_PTR(-EINVAL);
	mutex_lock(&rmem_heaps_lock);
	rdev = slot->rdev;
	if (rdev)
		rmem_dev_get(rdev);
	args.heap = slot->index;
	mutex_unlock(&rmem_heaps_lock);
	if (!rdev)
		return ERR_PTR(-ENODEV);
	err = rmem_buf_alloc(rdev, &args, &dmabuf);
	rmem_dev_put(rdev);
	return err ? ERR_PTR(err) : dmabuf;
}

static const struct dma_heap_ops rmem_heap_ops = {
	.allocate = rmem_heap_allocate,
};

/* "rmem-" and the heap's name, with anything but [A-Za-z0-9._-] as '_'. */
static void rmem_heap_name(char *dst, size_t size, const char *heap)
{
	size_t i;

	snprintf(dst, size, "rmem-%s", heap);
	for (i = 5; dst[i]; i++)
		if (!isalnum(dst[i]) && !strchr("._-", dst[i]))
			dst[i] = '_';
}

static struct rmem_heap_slot *rmem_heap_find(const char *name)
{
	struct rmem_heap_slot *slot;

	list_for_each_entry(slot, &rmem_heap_slots, node)
		if (!strcmp(slot->name, name))
			return slot;
	return NULL;
}

void rmem_heaps_register(struct rmem_dev *rdev)
{
	struct dma_heap_export_info exp = { .ops = &rmem_heap_ops };
	char name[RMEM_NAME_SIZE + 8];
	struct rmem_heap_slot *slot;
	struct dma_heap *heap;
	u32 i;

	mutex_lock(&rmem_heaps_lock);
	for (i = 0; i < min_t(u32, rdev->num_heaps, RMEM_MAX_HEAPS_CACHED); i++) {
		if (!rdev->heaps[i].valid || !rdev->heaps[i].name[0] ||
		    !(rdev->heaps[i].flags & VIRTIO_RMEM_HEAP_F_MAY_ALLOC))
			continue;
		rmem_heap_name(name, sizeof(name), rdev->heaps[i].name);
		slot = rmem_heap_find(name);
		if (slot) {
			if (slot->rdev) {
				pr_warn("%s: heap %s is another device's: not added\n",
					rdev->name, name);
				continue;
			}
			slot->rdev = rdev;
			slot->index = i;
			continue;
		}
		slot = kzalloc(sizeof(*slot), GFP_KERNEL);
		if (!slot)
			break;
		strscpy(slot->name, name, sizeof(slot->name));
		slot->rdev = rdev;
		slot->index = i;
		exp.name = slot->name;
		exp.priv = slot;
		heap = dma_heap_add(&exp);
		if (IS_ERR(heap)) {
			pr_warn("%s: cannot add dma-buf heap %s: %ld\n",
				rdev->name, name, PTR_ERR(heap));
			kfree(slot);
			continue;
		}
		slot->heap = heap;
		list_add_tail(&slot->node, &rmem_heap_slots);
		if (!rmem_heaps_pinned) {
			/* The heap's ops are ours, and it cannot be removed. */
			__module_get(THIS_MODULE);
			rmem_heaps_pinned = true;
		}
	}
	mutex_unlock(&rmem_heaps_lock);
}

void rmem_heaps_unregister(struct rmem_dev *rdev)
{
	struct rmem_heap_slot *slot;

	mutex_lock(&rmem_heaps_lock);
	list_for_each_entry(slot, &rmem_heap_slots, node)
		if (slot->rdev == rdev)
			slot->rdev = NULL;
	mutex_unlock(&rmem_heaps_lock);
}

#else /* !RMEM_HAVE_DMA_HEAP */

void rmem_heaps_register(struct rmem_dev *rdev)
{
}

void rmem_heaps_unregister(struct rmem_dev *rdev)
{
}

#endif
