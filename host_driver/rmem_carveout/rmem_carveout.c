// SPDX-License-Identifier: GPL-2.0
/*
 * rmem_carveout: mmap-able access for rmemd to exactly the rmem carve-outs.
 *
 * At load, the direct children of /reserved-memory whose compatible list
 * contains "rmem,carveout" are recorded (one reg range each). The misc
 * device /dev/rmem-carveout (root only) then offers:
 *
 *   read()  one text line per carve-out: "<base> <size> <name>\n", base and
 *           size in hex with 0x, name the device tree node's name
 *   mmap()  with offset = the physical address of a piece: maps that piece
 *           if it lies entirely inside one carve-out, otherwise -EINVAL.
 *           Shared mappings only; on a file opened read-only, read-only
 *           mappings only (no VM_MAYWRITE).
 *
 * The mapping is a PFN map (remap_pfn_range) with the caller's page
 * protection, i.e. Normal cacheable memory, as the kernel's own linear map
 * of a carve-out that is not no-map. KVM gives a guest such a piece as
 * Normal memory only if the carve-out is in the linear map (not no-map):
 * see README.md.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/of.h>
#include <linux/of_address.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/string.h>

#define RMEM_CARVEOUT_COMPATIBLE "rmem,carveout"

struct rmem_carveout {
	phys_addr_t base;
	phys_addr_t size;
	const char *name;
};

/* Written once at load, read-only afterwards: no locking needed. */
static struct rmem_carveout *carveouts;
static unsigned int nr_carveouts;
static char *listing;
static size_t listing_len;

static bool rmem_carveout_overlaps(phys_addr_t base, phys_addr_t size)
{
	unsigned int i;

	for (i = 0; i < nr_carveouts; i++) {
		const struct rmem_carveout *c = &carveouts[i];

		if (base < c->base + c->size && c->base < base + size)
			return true;
	}
	return false;
}

/*
 * Pages the kernel's page allocator may hand out must never reach user
 * space through us. A carve-out's pages are reserved (or have no struct
 * page at all, outside the kernel's memory map); anything else means the
 * reservation did not happen.
 */
static bool rmem_carveout_is_reserved(phys_addr_t base, phys_addr_t size)
{
	unsigned long pfn;

	for (pfn = PHYS_PFN(base); pfn < PHYS_PFN(base + size); pfn++) {
		if (pfn_valid(pfn) && !PageReserved(pfn_to_page(pfn)))
			return false;
		cond_resched();
	}
	return true;
}

/*
 * Whether KVM will see the pages as memory: on arm64 it gives a guest
 * Device attributes for any page outside the linear map (no-map).
 */
static const char *rmem_carveout_kind(phys_addr_t base)
{
#ifdef CONFIG_ARM64
	if (!pfn_is_map_memory(PHYS_PFN(base)))
		return ", no-map: KVM guests get it as Device memory";
	return ", in the linear map";
#else
	return "";
#endif
}

/*
 * Records the carve-out of @np (a compatible child of /reserved-memory).
 * Returns 0, or -EINVAL with a message naming the node if it is malformed.
 */
static int rmem_carveout_add(struct device_node *np)
{
	struct rmem_carveout *c = &carveouts[nr_carveouts];
	int na = of_n_addr_cells(np);
	int ns = of_n_size_cells(np);
	const __be32 *reg;
	int len;
	u64 base, size, end;

	if (!of_device_is_available(np)) {
		pr_err("%pOF: disabled, so not reserved: ignored\n", np);
		return -EINVAL;
	}
	reg = of_get_property(np, "reg", &len);
	if (!reg || na < 1 || na > 2 || ns < 1 || ns > 2 ||
	    len != (na + ns) * (int)sizeof(__be32)) {
		pr_err("%pOF: needs exactly one reg (address, size) tuple: ignored\n",
		       np);
		return -EINVAL;
	}
	base = of_read_number(reg, na);
	size = of_read_number(reg + na, ns);
	if (!size || !PAGE_ALIGNED(base) || !PAGE_ALIGNED(size)) {
		pr_err("%pOF: reg 0x%llx+0x%llx is empty or not page aligned: ignored\n",
		       np, base, size);
		return -EINVAL;
	}
	if (check_add_overflow(base, size, &end) || end - 1 > PHYS_ADDR_MAX) {
		pr_err("%pOF: reg 0x%llx+0x%llx overflows: ignored\n",
		       np, base, size);
		return -EINVAL;
	}
	if (rmem_carveout_overlaps(base, size)) {
		pr_err("%pOF: reg 0x%llx+0x%llx overlaps another carve-out: ignored\n",
		       np, base, size);
		return -EINVAL;
	}
	if (!rmem_carveout_is_reserved(base, size)) {
		pr_err("%pOF: reg 0x%llx+0x%llx is not reserved memory: ignored\n",
		       np, base, size);
		return -EINVAL;
	}
	c->name = kstrdup(kbasename(of_node_full_name(np)), GFP_KERNEL);
	if (!c->name)
		return -ENOMEM;
	c->base = base;
	c->size = size;
	nr_carveouts++;
	pr_info("%s: %pa+%pa%s\n", c->name, &c->base, &c->size,
		rmem_carveout_kind(base));
	return 0;
}

static void rmem_carveout_free(void)
{
	unsigned int i;

	for (i = 0; i < nr_carveouts; i++)
		kfree(carveouts[i].name);
	kfree(carveouts);
	kfree(listing);
	carveouts = NULL;
	nr_carveouts = 0;
	listing = NULL;
	listing_len = 0;
}

static int rmem_carveout_find_all(void)
{
	struct device_node *parent, *np;
	unsigned int candidates = 0;
	int ret = 0;

	parent = of_find_node_by_path("/reserved-memory");
	if (!parent) {
		pr_err("no /reserved-memory node\n");
		return -ENODEV;
	}
	for_each_child_of_node(parent, np)
		if (of_device_is_compatible(np, RMEM_CARVEOUT_COMPATIBLE))
			candidates++;
	if (!candidates) {
		pr_err("no %s node under /reserved-memory\n",
		       RMEM_CARVEOUT_COMPATIBLE);
		ret = -ENODEV;
		goto out;
	}
	carveouts = kcalloc(candidates, sizeof(*carveouts), GFP_KERNEL);
	if (!carveouts) {
		ret = -ENOMEM;
		goto out;
	}
	for_each_child_of_node(parent, np) {
		if (!of_device_is_compatible(np, RMEM_CARVEOUT_COMPATIBLE))
			continue;
		/* The tree cannot grow here, but never trust the count. */
		if (nr_carveouts == candidates) {
			of_node_put(np);
			break;
		}
		ret = rmem_carveout_add(np);
		if (ret == -ENOMEM) {
			of_node_put(np);
			goto out;
		}
	}
	ret = nr_carveouts ? 0 : -ENODEV;
	if (ret)
		pr_err("no usable %s node\n", RMEM_CARVEOUT_COMPATIBLE);
out:
	of_node_put(parent);
	return ret;
}

static int rmem_carveout_make_listing(void)
{
	unsigned int i;
	size_t len = 0;

	for (i = 0; i < nr_carveouts; i++)
		len += snprintf(NULL, 0, "0x%llx 0x%llx %s\n",
				(u64)carveouts[i].base, (u64)carveouts[i].size,
				carveouts[i].name);
	listing = kmalloc(len + 1, GFP_KERNEL);
	if (!listing)
		return -ENOMEM;
	for (i = 0; i < nr_carveouts; i++)
		listing_len += scnprintf(listing + listing_len,
					 len + 1 - listing_len,
					 "0x%llx 0x%llx %s\n",
					 (u64)carveouts[i].base,
					 (u64)carveouts[i].size, carveouts[i].name);
	return 0;
}

/* The carve-out that holds all of [start, start + len), or NULL. */
static const struct rmem_carveout *rmem_carveout_find(phys_addr_t start,
						      unsigned long len)
{
	unsigned int i;

	for (i = 0; i < nr_carveouts; i++) {
		const struct rmem_carveout *c = &carveouts[i];

		if (start >= c->base && start - c->base <= c->size &&
		    len <= c->size - (start - c->base))
			return c;
	}
	return NULL;
}

static int rmem_carveout_open(struct inode *inode, struct file *file)
{
	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	return 0;
}

static ssize_t rmem_carveout_read(struct file *file, char __user *buf,
				  size_t count, loff_t *ppos)
{
	return simple_read_from_buffer(buf, count, ppos, listing, listing_len);
}

static int rmem_carveout_mmap(struct file *file, struct vm_area_struct *vma)
{
	unsigned long len = vma->vm_end - vma->vm_start;
	phys_addr_t start;

	/* A private (copy-on-write) mapping of physical memory means nothing. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff > PHYS_PFN(PHYS_ADDR_MAX))
		return -EINVAL;
	start = PFN_PHYS((phys_addr_t)vma->vm_pgoff);
	if (!rmem_carveout_find(start, len))
		return -EINVAL;
	/*
	 * mmap() already refuses PROT_WRITE on a read-only file and clears
	 * VM_MAYWRITE from its shared mappings; say it here too, so that no
	 * later mprotect() can add write access.
	 */
	if (!(file->f_mode & FMODE_WRITE)) {
		if (vma->vm_flags & VM_WRITE)
			return -EACCES;
		vma->vm_flags &= ~VM_MAYWRITE;
	}
	return remap_pfn_range(vma, vma->vm_start, vma->vm_pgoff, len,
			       vma->vm_page_prot);
}

static const struct file_operations rmem_carveout_fops = {
	.owner = THIS_MODULE,
	.open = rmem_carveout_open,
	.read = rmem_carveout_read,
	.mmap = rmem_carveout_mmap,
	.llseek = default_llseek,
};

static struct miscdevice rmem_carveout_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "rmem-carveout",
	.fops = &rmem_carveout_fops,
	.mode = 0600,
};

static int __init rmem_carveout_init(void)
{
	int ret;

	ret = rmem_carveout_find_all();
	if (ret)
		goto err;
	ret = rmem_carveout_make_listing();
	if (ret)
		goto err;
	ret = misc_register(&rmem_carveout_dev);
	if (ret) {
		pr_err("cannot register /dev/%s: %d\n", rmem_carveout_dev.name,
		       ret);
		goto err;
	}
	pr_info("/dev/%s: %u carve-out(s)\n", rmem_carveout_dev.name,
		nr_carveouts);
	return 0;
err:
	rmem_carveout_free();
	return ret;
}

static void __exit rmem_carveout_exit(void)
{
	misc_deregister(&rmem_carveout_dev);
	rmem_carveout_free();
}

module_init(rmem_carveout_init);
module_exit(rmem_carveout_exit);

MODULE_DESCRIPTION("mmap access to the rmem carve-outs for rmemd");
MODULE_LICENSE("GPL");
