// SPDX-License-Identifier: GPL-2.0
/*
 * virtio_rmem: /dev/rmem, the user-space interface (guest_driver/uapi/rmem.h).
 *
 * The first device is /dev/rmem, further ones /dev/rmem1, /dev/rmem2, ...
 * An open file holds a reference to its device's struct rmem_dev, so it
 * stays valid after the device is removed: its ioctls then fail with
 * ENODEV, read() returns what is still queued and then ENODEV, poll()
 * reports EPOLLHUP | EPOLLERR.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "rmem.h"

static DEFINE_IDA(rmem_minors);

/* Copies a NUL-padded wire name into a NUL-terminated uapi one. */
static void rmem_name_out(char *dst, const u8 *src)
{
	size_t len = strnlen((const char *)src, VIRTIO_RMEM_NAME_SIZE);

	len = min_t(size_t, len, RMEM_NAME_SIZE - 1);
	memset(dst, 0, RMEM_NAME_SIZE);
	memcpy(dst, src, len);
}

/*
 * Gives the dma-buf a file descriptor and copies @args (whose fd field is
 * @fd_field) to user space; the descriptor exists only if that worked.
 * Consumes the caller's dma-buf reference either way.
 */
static int rmem_install_fd(struct dma_buf *dmabuf, void __user *uarg,
			   void *args, size_t size, __s32 *fd_field)
{
	int fd = get_unused_fd_flags(O_CLOEXEC);

	if (fd < 0) {
		dma_buf_put(dmabuf);
		return fd;
	}
	*fd_field = fd;
	if (copy_to_user(uarg, args, size)) {
		put_unused_fd(fd);
		dma_buf_put(dmabuf);
		return -EFAULT;
	}
	fd_install(fd, dmabuf->file);
	return 0;
}

static int rmem_ioc_info(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_info info = {
		.vm_id = rdev->vm_id,
		.num_heaps = rdev->num_heaps,
		.num_peers = rdev->num_peers,
		.max_receivers = rdev->max_receivers,
		.quota_bytes = rdev->quota_bytes,
		.features = rdev->features,
		.shm_size = rdev->shm_len,
	};

	if (rmem_dev_stopped(rdev))
		info.flags |= RMEM_INFO_F_BROKEN;
	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static int rmem_ioc_get_heap(struct rmem_dev *rdev, void __user *uarg)
{
	struct virtio_rmem_req_get_heap req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_GET_HEAP),
	};
	struct virtio_rmem_resp_get_heap resp;
	struct rmem_heap_info info;
	int err;

	if (copy_from_user(&info, uarg, sizeof(info)))
		return -EFAULT;
	if (info.reserved)
		return -EINVAL;
	req.heap = cpu_to_le32(info.index);
	err = rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
	if (err)
		return err;
	info.flags = le32_to_cpu(resp.flags);
	info.rights = le32_to_cpu(resp.rights);
	rmem_name_out(info.name, resp.name);
	rmem_name_out(info.use_case, resp.use_case);
	info.size_bytes = le64_to_cpu(resp.size_bytes);
	info.free_bytes = le64_to_cpu(resp.free_bytes);
	info.max_align = le64_to_cpu(resp.max_align);
	info.quota_bytes = le64_to_cpu(resp.quota_bytes);
	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static int rmem_ioc_get_peer(struct rmem_dev *rdev, void __user *uarg)
{
	struct virtio_rmem_req_get_peer req = {
		.hdr.type = cpu_to_le32(VIRTIO_RMEM_REQ_GET_PEER),
	};
	struct virtio_rmem_resp_get_peer resp;
	struct rmem_peer_info info;
	int err;

	if (copy_from_user(&info, uarg, sizeof(info)))
		return -EFAULT;
	req.peer = cpu_to_le32(info.index);
	err = rmem_request(rdev, &req, sizeof(req), &resp, sizeof(resp));
	if (err)
		return err;
	info.vm_id = le32_to_cpu(resp.vm_id);
	rmem_name_out(info.name, resp.name);
	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static int rmem_ioc_alloc(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_alloc args;
	struct dma_buf *dmabuf;
	int err;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	err = rmem_buf_alloc(rdev, &args, &dmabuf);
	if (err)
		return err;
	return rmem_install_fd(dmabuf, uarg, &args, sizeof(args), &args.fd);
}

static int rmem_ioc_offer(struct rmem_dev *rdev, void __user *uarg, u32 type)
{
	struct rmem_receiver *to;
	struct rmem_offer args;
	struct rmem_buf *buf;
	int err;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (!args.num_receivers || args.num_receivers > rdev->max_receivers ||
	    args.num_receivers > RMEM_MAX_RECEIVERS)
		return -EINVAL;
	to = memdup_user(u64_to_user_ptr(args.receivers),
			 array_size(args.num_receivers, sizeof(*to)));
	if (IS_ERR(to))
		return PTR_ERR(to);
	buf = rmem_buf_get(rdev, args.fd);
	if (IS_ERR(buf)) {
		err = PTR_ERR(buf);
		goto out;
	}
	err = rmem_buf_offer(buf, type, to, args.num_receivers, &args.handle);
	rmem_buf_put(buf);
	if (!err && copy_to_user(uarg, &args, sizeof(args)))
		err = -EFAULT;
out:
	kfree(to);
	return err;
}

static int rmem_ioc_donate(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_donate args;
	struct rmem_buf *buf;
	int err;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	buf = rmem_buf_get(rdev, args.fd);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	err = rmem_buf_donate(buf, args.vm_id, &args.handle);
	rmem_buf_put(buf);
	if (!err && copy_to_user(uarg, &args, sizeof(args)))
		err = -EFAULT;
	return err;
}

static int rmem_ioc_retrieve(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_retrieve args;
	struct dma_buf *dmabuf;
	int err;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	err = rmem_buf_retrieve(rdev, &args, &dmabuf);
	if (err)
		return err;
	return rmem_install_fd(dmabuf, uarg, &args, sizeof(args), &args.fd);
}

static int rmem_ioc_relinquish(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_relinquish args;
	struct rmem_buf *buf;
	int err;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.flags)
		return -EINVAL;
	if (args.fd == -1)
		return rmem_relinquish_handle(rdev, args.handle);
	buf = rmem_buf_get(rdev, args.fd);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	err = rmem_buf_relinquish(buf);
	rmem_buf_put(buf);
	return err;
}

static int rmem_ioc_reclaim(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_reclaim args;
	struct rmem_buf *buf;
	int err;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	buf = rmem_buf_get(rdev, args.fd);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	err = rmem_buf_reclaim(buf, args.flags);
	rmem_buf_put(buf);
	return err;
}

static int rmem_ioc_free(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_free args;
	struct rmem_buf *buf;
	int err;

	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.reserved)
		return -EINVAL;
	buf = rmem_buf_get(rdev, args.fd);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	err = rmem_buf_free(buf);
	rmem_buf_put(buf);
	return err;
}

static int rmem_ioc_buf_info(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_buf_info info;
	struct rmem_buf *buf;

	if (copy_from_user(&info, uarg, sizeof(info)))
		return -EFAULT;
	buf = rmem_buf_get(rdev, info.fd);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	rmem_buf_info(buf, &info);
	rmem_buf_put(buf);
	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

/* TEST ONLY: a request exactly as user space wrote it. */
static int rmem_ioc_raw(struct rmem_dev *rdev, void __user *uarg)
{
	struct rmem_raw args;
	void *req, *resp = NULL;
	u32 used = 0;
	int err;

	if (!READ_ONCE(rmem_raw_requests) || !capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&args, uarg, sizeof(args)))
		return -EFAULT;
	if (args.reserved || !args.req_len || args.req_len > RMEM_RAW_MAX ||
	    args.resp_len > RMEM_RAW_MAX)
		return -EINVAL;
	req = memdup_user(u64_to_user_ptr(args.req), args.req_len);
	if (IS_ERR(req))
		return PTR_ERR(req);
	if (args.resp_len) {
		resp = kzalloc(args.resp_len, GFP_KERNEL);
		if (!resp) {
			err = -ENOMEM;
			goto out;
		}
	}
	err = rmem_transact(rdev, req, args.req_len, resp, args.resp_len,
			    &used);
	if (err)
		goto out;
	args.used_len = used;
	if (copy_to_user(u64_to_user_ptr(args.resp), resp,
			 min(used, args.resp_len)) ||
	    copy_to_user(uarg, &args, sizeof(args)))
		err = -EFAULT;
out:
	kfree(resp);
	kfree(req);
	return err;
}

static long rmem_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct rmem_dev *rdev = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case RMEM_IOC_INFO:
		return rmem_ioc_info(rdev, uarg);
	case RMEM_IOC_GET_HEAP:
		return rmem_ioc_get_heap(rdev, uarg);
	case RMEM_IOC_GET_PEER:
		return rmem_ioc_get_peer(rdev, uarg);
	case RMEM_IOC_ALLOC:
		return rmem_ioc_alloc(rdev, uarg);
	case RMEM_IOC_FREE:
		return rmem_ioc_free(rdev, uarg);
	case RMEM_IOC_SHARE:
		return rmem_ioc_offer(rdev, uarg, VIRTIO_RMEM_REQ_SHARE);
	case RMEM_IOC_LEND:
		return rmem_ioc_offer(rdev, uarg, VIRTIO_RMEM_REQ_LEND);
	case RMEM_IOC_DONATE:
		return rmem_ioc_donate(rdev, uarg);
	case RMEM_IOC_RETRIEVE:
		return rmem_ioc_retrieve(rdev, uarg);
	case RMEM_IOC_RELINQUISH:
		return rmem_ioc_relinquish(rdev, uarg);
	case RMEM_IOC_RECLAIM:
		return rmem_ioc_reclaim(rdev, uarg);
	case RMEM_IOC_BUF_INFO:
		return rmem_ioc_buf_info(rdev, uarg);
	case RMEM_IOC_RAW:
		return rmem_ioc_raw(rdev, uarg);
	default:
		return -ENOTTY;
	}
}

/*
 * Removed, or broken (needs a reset) with every buffer already made
 * unusable: no event will come any more.
 */
static bool rmem_evq_ended(struct rmem_dev *rdev)
{
	return READ_ONCE(rdev->removed) || READ_ONCE(rdev->events_ended);
}

static bool rmem_evq_ready(struct rmem_dev *rdev)
{
	unsigned long flags;
	bool ready;

	spin_lock_irqsave(&rdev->evq_lock, flags);
	ready = rdev->evq_count;
	spin_unlock_irqrestore(&rdev->evq_lock, flags);
	return ready || rmem_evq_ended(rdev);
}

/* Takes the oldest queued event, if any, after copying it out. */
static int rmem_read_one(struct rmem_dev *rdev, char __user *ubuf)
{
	struct rmem_event ev;
	unsigned long flags;
	bool have;

	spin_lock_irqsave(&rdev->evq_lock, flags);
	have = rdev->evq_count;
	if (have)
		ev = rdev->evq[rdev->evq_head];
	spin_unlock_irqrestore(&rdev->evq_lock, flags);
	if (!have)
		return 0;
	if (copy_to_user(ubuf, &ev, sizeof(ev)))
		return -EFAULT;
	/* Readers are serialized (read_lock): the head is still this one. */
	spin_lock_irqsave(&rdev->evq_lock, flags);
	rdev->evq_head = (rdev->evq_head + 1) % RMEM_EVENT_QUEUE_LEN;
	rdev->evq_count--;
	spin_unlock_irqrestore(&rdev->evq_lock, flags);
	return 1;
}

static ssize_t rmem_read(struct file *file, char __user *ubuf, size_t count,
			 loff_t *ppos)
{
	struct rmem_dev *rdev = file->private_data;
	size_t n = count / sizeof(struct rmem_event), done = 0;
	int ret = 0;

	if (!n)
		return -EINVAL;
	for (;;) {
		if (mutex_lock_interruptible(&rdev->read_lock))
			return -ERESTARTSYS;
		while (done < n) {
			ret = rmem_read_one(rdev, ubuf +
					    done * sizeof(struct rmem_event));
			if (ret <= 0)
				break;
			done++;
		}
		mutex_unlock(&rdev->read_lock);
		if (done)
			return done * sizeof(struct rmem_event);
		if (ret < 0)
			return ret;
		if (rmem_evq_ended(rdev))
			return -ENODEV;
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		if (wait_event_interruptible(rdev->evq_wait,
					     rmem_evq_ready(rdev)))
			return -ERESTARTSYS;
	}
}

static __poll_t rmem_poll(struct file *file, poll_table *wait)
{
	struct rmem_dev *rdev = file->private_data;
	unsigned long flags;
	__poll_t mask = 0;

	poll_wait(file, &rdev->evq_wait, wait);
	spin_lock_irqsave(&rdev->evq_lock, flags);
	if (rdev->evq_count)
		mask |= EPOLLIN | EPOLLRDNORM;
	spin_unlock_irqrestore(&rdev->evq_lock, flags);
	if (rmem_evq_ended(rdev))
		mask |= EPOLLHUP | EPOLLERR;
	return mask;
}

static int rmem_open(struct inode *inode, struct file *file)
{
	/* misc_open() set private_data to our miscdevice, under misc_mtx. */
	struct rmem_dev *rdev = container_of(file->private_data,
					     struct rmem_dev, misc);

	rmem_dev_get(rdev);
	file->private_data = rdev;
	return stream_open(inode, file);
}

static int rmem_release(struct inode *inode, struct file *file)
{
	rmem_dev_put(file->private_data);
	return 0;
}

static const struct file_operations rmem_fops = {
	.owner = THIS_MODULE,
	.open = rmem_open,
	.release = rmem_release,
	.read = rmem_read,
	.poll = rmem_poll,
	.unlocked_ioctl = rmem_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

int rmem_cdev_register(struct rmem_dev *rdev)
{
	int index, err;

	index = ida_alloc(&rmem_minors, GFP_KERNEL);
	if (index < 0)
		return index;
	if (index)
		snprintf(rdev->name, sizeof(rdev->name), "rmem%d", index);
	else
		strscpy(rdev->name, "rmem", sizeof(rdev->name));
	rdev->index = index;
	rdev->misc.minor = MISC_DYNAMIC_MINOR;
	rdev->misc.name = rdev->name;
	rdev->misc.fops = &rmem_fops;
	rdev->misc.parent = &rdev->vdev->dev;
	rdev->misc.mode = 0600;
	err = misc_register(&rdev->misc);
	if (err) {
		dev_err(&rdev->vdev->dev, "cannot register /dev/%s: %d\n",
			rdev->name, err);
		ida_free(&rmem_minors, index);
		rdev->index = -1;
		return err;
	}
	rdev->misc_registered = true;
	return 0;
}

void rmem_cdev_unregister(struct rmem_dev *rdev)
{
	if (!rdev->misc_registered)
		return;
	misc_deregister(&rdev->misc);
	rdev->misc_registered = false;
	ida_free(&rmem_minors, rdev->index);
	rdev->index = -1;
}
