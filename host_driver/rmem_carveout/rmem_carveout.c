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
 *   mmap()  with offset = a physical address: maps that range if it lies
 *           entirely inside one carve-out, otherwise -EINVAL. Shared
 *           mappings only; on a file opened read-only, read-only mappings
 *           only (no VM_MAYWRITE).
 *   ioctl() RMEM_CARVEOUT_IOC_PIECE issues a *piece*: a file of its own for
 *           one range inside one carve-out with one right (read-only or
 *           read-write), which rmemd hands to a VMM instead of the device;
 *           RMEM_CARVEOUT_IOC_REVOKE tears down every mapping of a piece
 *           and refuses new ones. Releasing the device file revokes every
 *           piece it issued. The contract: host_driver/uapi/rmem_carveout.h.
 *
 * The device's mapping is a PFN map (remap_pfn_range) with the caller's page
 * protection, i.e. Normal cacheable memory, as the kernel's own linear map
 * of a carve-out that is not no-map; a piece's mapping has the same
 * protection, its pages inserted on fault. KVM gives a guest such pages as
 * Normal memory only if the carve-out is in the linear map (not no-map):
 * see README.md.
 *
 * Locking: rmem_sessions_lock guards every session's list of pieces and
 * every piece's ->session; a piece's own ->lock guards ->revoked, and is
 * taken inside rmem_sessions_lock, never around it.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/of.h>
#include <linux/of_address.h>
#include <linux/overflow.h>
#include <linux/pseudo_fs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "host_driver/uapi/rmem_carveout.h"

#define RMEM_CARVEOUT_COMPATIBLE "rmem,carveout"
/* statfs()'s f_type of a piece file: "rmpc". */
#define RMEM_PIECE_FS_MAGIC 0x726d7063

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

/*
 * One open of the device: the pieces it issued, so that they can be revoked
 * when it is released. A piece stays on its session's list until either
 * goes: the piece's release takes it off, the session's release revokes it
 * and detaches it (->session = NULL).
 */
struct rmem_session {
	struct list_head pieces;	/* under rmem_sessions_lock */
};

/* One piece: fixed at issue, but for ->revoked, ->session and ->node. */
struct rmem_piece {
	phys_addr_t phys;
	u64 size;
	bool writable;
	/* Its inode's: where every mapping of the piece is found. */
	struct address_space *mapping;
	/* Orders revoke against fault; guards ->revoked. */
	struct mutex lock;
	bool revoked;
	/* Under rmem_sessions_lock; NULL once the issuer is released. */
	struct rmem_session *session;
	struct list_head node;
};

static DEFINE_MUTEX(rmem_sessions_lock);

/*
 * Piece files live on a private pseudo filesystem, one inode each, so that
 * each piece has an address_space of its own: unmap_mapping_range() on it
 * reaches exactly the piece's mappings, in every process. The filesystem
 * has no .owner: the kernel mount would otherwise pin the module forever.
 * Each piece file pins the module through its f_op instead.
 */
static struct vfsmount *rmem_piece_mnt;

static int rmem_piece_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, RMEM_PIECE_FS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type rmem_piece_fs_type = {
	.name = "rmem_piece",
	.init_fs_context = rmem_piece_init_fs_context,
	.kill_sb = kill_anon_super,
};

static unsigned long rmem_piece_pages(const struct rmem_piece *piece)
{
	return piece->size >> PAGE_SHIFT;
}

/*
 * After this no page of @piece can be mapped again: a fault that raced
 * with us either inserted its page before ->revoked was set, and then the
 * unmap below removes it, or sees ->revoked and fails. KVM's stage-2
 * mappings go with the host's through its MMU notifier. Idempotent.
 */
static void rmem_piece_revoke(struct rmem_piece *piece)
{
	mutex_lock(&piece->lock);
	piece->revoked = true;
	mutex_unlock(&piece->lock);
	unmap_mapping_range(piece->mapping, 0, 0, 1);
}

/*
 * The first fault inserts the whole VMA: a guest's buffer is touched page by
 * page through KVM, and one host fault per page would double what each of
 * its stage-2 faults costs. Pages already present are left as they are.
 */
static vm_fault_t rmem_piece_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct rmem_piece *piece = vma->vm_file->private_data;
	unsigned long pages = vma_pages(vma);
	vm_fault_t ret = VM_FAULT_NOPAGE;
	unsigned long i;

	mutex_lock(&piece->lock);
	if (piece->revoked || vmf->pgoff >= rmem_piece_pages(piece) ||
	    vma->vm_pgoff >= rmem_piece_pages(piece) ||
	    pages > rmem_piece_pages(piece) - vma->vm_pgoff) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	for (i = 0; i < pages; i++) {
		ret = vmf_insert_pfn(vma, vma->vm_start + (i << PAGE_SHIFT),
				     PHYS_PFN(piece->phys) + vma->vm_pgoff + i);
		if (ret != VM_FAULT_NOPAGE)
			break;
	}
out:
	mutex_unlock(&piece->lock);
	return ret;
}

static const struct vm_operations_struct rmem_piece_vm_ops = {
	.fault = rmem_piece_fault,
};

static int rmem_piece_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct rmem_piece *piece = file->private_data;
	unsigned long pages = vma_pages(vma);
	bool revoked;

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	mutex_lock(&piece->lock);
	revoked = piece->revoked;
	mutex_unlock(&piece->lock);
	if (revoked)
		return -ENODEV;
	if (vma->vm_pgoff >= rmem_piece_pages(piece) ||
	    pages > rmem_piece_pages(piece) - vma->vm_pgoff)
		return -EINVAL;
	/*
	 * A read-only piece is a file opened read-only, so mmap() has already
	 * refused PROT_WRITE; say it here too, and take VM_MAYWRITE away so
	 * that no later mprotect() can add write access.
	 */
	if (!piece->writable) {
		if (vma->vm_flags & VM_WRITE)
			return -EACCES;
		vma->vm_flags &= ~VM_MAYWRITE;
	}
	/*
	 * Nothing is mapped here: this VMA is not yet in the mapping's tree,
	 * so a revoke running now could not remove pages inserted now. Pages
	 * come on fault, which a revoke orders against (as vfio-pci does).
	 */
	vma->vm_flags |= VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_ops = &rmem_piece_vm_ops;
	return 0;
}

/* Every mapping holds the file, so none is left when it is released. */
static int rmem_piece_release(struct inode *inode, struct file *file)
{
	struct rmem_piece *piece = file->private_data;

	mutex_lock(&rmem_sessions_lock);
	if (piece->session)
		list_del(&piece->node);
	mutex_unlock(&rmem_sessions_lock);
	mutex_destroy(&piece->lock);
	kfree(piece);
	return 0;
}

/* No read or write: a piece is for mapping. */
static const struct file_operations rmem_piece_fops = {
	.owner = THIS_MODULE,
	.mmap = rmem_piece_mmap,
	.release = rmem_piece_release,
	.llseek = noop_llseek,
};

/*
 * A new file for @piece, opened read-write or read-only as its right says;
 * it takes over @piece (freed by its release) and a module reference.
 */
static struct file *rmem_piece_file(struct rmem_piece *piece)
{
	struct inode *inode;
	struct file *file;

	inode = alloc_anon_inode(rmem_piece_mnt->mnt_sb);
	if (IS_ERR(inode))
		return ERR_CAST(inode);
	inode->i_size = piece->size;
	/* __fput() drops a reference on f_op's owner that nobody took yet. */
	if (!try_module_get(THIS_MODULE)) {
		iput(inode);
		return ERR_PTR(-ENODEV);
	}
	file = alloc_file_pseudo(inode, rmem_piece_mnt, "rmem_piece",
				 piece->writable ? O_RDWR : O_RDONLY,
				 &rmem_piece_fops);
	if (IS_ERR(file)) {
		module_put(THIS_MODULE);
		iput(inode);
		return file;
	}
	piece->mapping = inode->i_mapping;
	file->private_data = piece;
	return file;
}

static long rmem_carveout_ioctl_piece(struct file *file, void __user *argp)
{
	struct rmem_session *session = file->private_data;
	struct rmem_carveout_piece req;
	struct rmem_piece *piece;
	struct file *piece_file;
	int fd;

	/* Only rmemd's own read-write open hands out rights. */
	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.flags & ~RMEM_CARVEOUT_PIECE_WRITE)
		return -EINVAL;
	if (!req.size || !PAGE_ALIGNED(req.phys) || !PAGE_ALIGNED(req.size) ||
	    req.phys > PHYS_ADDR_MAX || req.size > ULONG_MAX ||
	    !rmem_carveout_find(req.phys, req.size))
		return -EINVAL;

	piece = kzalloc(sizeof(*piece), GFP_KERNEL);
	if (!piece)
		return -ENOMEM;
	piece->phys = req.phys;
	piece->size = req.size;
	piece->writable = req.flags & RMEM_CARVEOUT_PIECE_WRITE;
	mutex_init(&piece->lock);
	piece_file = rmem_piece_file(piece);
	if (IS_ERR(piece_file)) {
		mutex_destroy(&piece->lock);
		kfree(piece);
		return PTR_ERR(piece_file);
	}
	/*
	 * On the session's list before the fd exists: once it does, another
	 * thread may close it, and the release must find the piece listed or
	 * never listed, not in between. From here fput() undoes everything.
	 */
	mutex_lock(&rmem_sessions_lock);
	piece->session = session;
	list_add(&piece->node, &session->pieces);
	mutex_unlock(&rmem_sessions_lock);

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		fput(piece_file);
		return fd;
	}
	req.fd = fd;
	if (copy_to_user(argp, &req, sizeof(req))) {
		put_unused_fd(fd);
		fput(piece_file);
		return -EFAULT;
	}
	fd_install(fd, piece_file);
	return 0;
}

static long rmem_carveout_ioctl_revoke(struct file *file, void __user *argp)
{
	struct rmem_session *session = file->private_data;
	struct rmem_piece *piece;
	struct fd f;
	__s32 fd;
	bool ours;
	int ret = 0;

	if (get_user(fd, (__s32 __user *)argp))
		return -EFAULT;
	f = fdget(fd);
	if (!f.file)
		return -EBADF;
	if (f.file->f_op != &rmem_piece_fops) {
		ret = -EINVAL;
		goto out;
	}
	/* Our reference on the file keeps the piece. */
	piece = f.file->private_data;
	mutex_lock(&rmem_sessions_lock);
	ours = piece->session == session;
	mutex_unlock(&rmem_sessions_lock);
	if (ours)
		rmem_piece_revoke(piece);
	else
		ret = -EPERM;
out:
	fdput(f);
	return ret;
}

static long rmem_carveout_ioctl(struct file *file, unsigned int cmd,
				unsigned long arg)
{
	switch (cmd) {
	case RMEM_CARVEOUT_IOC_PIECE:
		return rmem_carveout_ioctl_piece(file, (void __user *)arg);
	case RMEM_CARVEOUT_IOC_REVOKE:
		return rmem_carveout_ioctl_revoke(file, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static int rmem_carveout_open(struct inode *inode, struct file *file)
{
	struct rmem_session *session;

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	session = kzalloc(sizeof(*session), GFP_KERNEL);
	if (!session)
		return -ENOMEM;
	INIT_LIST_HEAD(&session->pieces);
	file->private_data = session;
	return 0;
}

/*
 * The issuer is gone (rmemd exited or crashed): nobody is left to revoke
 * its pieces, so they are revoked now. They live on, unmappable, until
 * their last file reference goes.
 */
static int rmem_carveout_release(struct inode *inode, struct file *file)
{
	struct rmem_session *session = file->private_data;
	struct rmem_piece *piece, *next;

	mutex_lock(&rmem_sessions_lock);
	list_for_each_entry_safe(piece, next, &session->pieces, node) {
		rmem_piece_revoke(piece);
		list_del(&piece->node);
		piece->session = NULL;
	}
	mutex_unlock(&rmem_sessions_lock);
	kfree(session);
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
	.release = rmem_carveout_release,
	.read = rmem_carveout_read,
	.mmap = rmem_carveout_mmap,
	.unlocked_ioctl = rmem_carveout_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
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
	rmem_piece_mnt = kern_mount(&rmem_piece_fs_type);
	if (IS_ERR(rmem_piece_mnt)) {
		ret = PTR_ERR(rmem_piece_mnt);
		pr_err("cannot mount the piece filesystem: %d\n", ret);
		goto err;
	}
	ret = misc_register(&rmem_carveout_dev);
	if (ret) {
		pr_err("cannot register /dev/%s: %d\n", rmem_carveout_dev.name,
		       ret);
		goto err_unmount;
	}
	pr_info("/dev/%s: %u carve-out(s)\n", rmem_carveout_dev.name,
		nr_carveouts);
	return 0;
err_unmount:
	kern_unmount(rmem_piece_mnt);
err:
	rmem_carveout_free();
	return ret;
}

/* Every piece file holds the module: none is left here. */
static void __exit rmem_carveout_exit(void)
{
	misc_deregister(&rmem_carveout_dev);
	kern_unmount(rmem_piece_mnt);
	rmem_carveout_free();
}

module_init(rmem_carveout_init);
module_exit(rmem_carveout_exit);

MODULE_DESCRIPTION("mmap access to the rmem carve-outs for rmemd");
MODULE_LICENSE("GPL");
