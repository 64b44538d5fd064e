// SPDX-License-Identifier: GPL-2.0
/*
 * rmemtool: drives /dev/rmem (guest_driver/uapi/rmem.h) for the end-to-end
 * tests and the demo. One process runs a script of commands, one per
 * argument, so that buffers (dma-buf fds, which die with the process) live
 * across steps:
 *
 *   rmemtool [-d DEV] 'alloc 0 1M as=a' 'fill a 0x5a' 'share a 2:rm' \
 *            'events 1 timeout=30' 'expect=EBUSY free a' ...
 *
 * Every command prints one or more machine-readable lines
 *
 *   RMEM-L2-TOOL <verb> key=value ...
 *
 * and, when it fails, error=<ERRNO NAME>. A failing command ends the script
 * (exit 1) unless its first word is expect=<ERRNO NAME>|ok (then it must
 * end exactly so) or '?' (then any outcome is fine). The last line is
 * "RMEM-L2-TOOL done commands=N failed=M". `rmemtool help` lists the
 * commands.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/dma-buf.h>

#include "guest_driver/rmemtool/fault_probe.h"
#include "guest_driver/uapi/rmem.h"
#include "virtio_rmem/uapi/virtio_rmem.h"

#define MAX_SLOTS 16
#define MAX_WORDS 16

struct slot {
	char name[16];
	int fd;
	uint64_t size;
	uint64_t buffer;
	uint64_t handle;	/* the offer made from it, or the one retrieved */
	uint32_t rights;
	void *map;		/* a mapping kept by 'map' */
	bool map_writable;
};

static const char *dev_path = "/dev/rmem";
static int dev_fd = -1;
static struct slot slots[MAX_SLOTS];
static uint64_t last_offered;	/* handle of the last OFFERED event read */

static const struct {
	int err;
	const char *name;
} errnames[] = {
	{ 0, "ok" }, { EINVAL, "EINVAL" }, { EOPNOTSUPP, "EOPNOTSUPP" },
	{ ENOENT, "ENOENT" }, { EACCES, "EACCES" }, { EBUSY, "EBUSY" },
	{ ENOSPC, "ENOSPC" }, { EIO, "EIO" }, { ENODEV, "ENODEV" },
	{ ETIMEDOUT, "ETIMEDOUT" }, { ENXIO, "ENXIO" }, { EBADF, "EBADF" },
	{ EFAULT, "EFAULT" }, { ENOMEM, "ENOMEM" }, { EPERM, "EPERM" },
	{ ENOTTY, "ENOTTY" }, { EAGAIN, "EAGAIN" }, { EINTR, "EINTR" },
	{ ENOEXEC, "ENOEXEC" }, { ERANGE, "ERANGE" },
};

static const char *errname(int err)
{
	static char buf[16];
	size_t i;

	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

static int errnum(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (!strcmp(errnames[i].name, name))
			return errnames[i].err;
	return -1;
}

static const char *status_name(uint32_t status)
{
	static const char *const names[] = {
		"OK", "INVALID", "UNSUPPORTED", "NOT_FOUND", "DENIED", "BUSY",
		"NO_SPACE", "DEVICE_ERROR",
	};

	return status < sizeof(names) / sizeof(names[0]) ? names[status] : "UNKNOWN";
}

static const char *event_name(uint32_t type)
{
	static const char *const names[] = {
		"NONE", "OFFERED", "RETRIEVED", "RELINQUISHED", "REVOKED", "DONATED",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "UNKNOWN";
}

static const char *kind_name(uint32_t kind)
{
	static const char *const names[] = { "none", "share", "lend", "donate" };

	return kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "unknown";
}

static void rights_str(uint32_t rights, char out[8])
{
	char *p = out;

	if (rights & RMEM_RIGHT_READ)
		*p++ = 'r';
	if (rights & RMEM_RIGHT_WRITE)
		*p++ = 'w';
	if (rights & RMEM_RIGHT_CPU_MAP)
		*p++ = 'm';
	if (p == out)
		*p++ = '-';
	*p = '\0';
}

static int parse_rights(const char *s, uint32_t *rights)
{
	*rights = 0;
	for (; *s; s++) {
		if (*s == 'r')
			*rights |= RMEM_RIGHT_READ;
		else if (*s == 'w')
			*rights |= RMEM_RIGHT_WRITE;
		else if (*s == 'm')
			*rights |= RMEM_RIGHT_CPU_MAP;
		else if (*s != '-')
			return -1;
	}
	return 0;
}

/* A number with an optional K, M or G suffix (binary). */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'K': case 'k':
		v <<= 10; end++; break;
	case 'M': case 'm':
		v <<= 20; end++; break;
	case 'G': case 'g':
		v <<= 30; end++; break;
	default:
		break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static void out(const char *verb, const char *fmt, ...)
{
	va_list ap;

	printf("RMEM-L2-TOOL %s", verb);
	if (fmt && *fmt) {
		putchar(' ');
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
}

/* Prints the failure of @verb and returns -err (err > 0). */
static int fail(const char *verb, int err, const char *fmt, ...)
{
	va_list ap;

	printf("RMEM-L2-TOOL %s error=%s", verb, errname(err));
	if (fmt && *fmt) {
		putchar(' ');
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
	return -err;
}

static int usage_error(const char *verb, const char *why)
{
	printf("RMEM-L2-TOOL %s error=USAGE why=\"%s\"\n", verb, why);
	fflush(stdout);
	return -EINVAL;
}

static int open_dev(void)
{
	if (dev_fd >= 0)
		return 0;
	dev_fd = open(dev_path, O_RDWR | O_CLOEXEC);
	return dev_fd < 0 ? -errno : 0;
}

static struct slot *slot_find(const char *name)
{
	int i;

	for (i = 0; i < MAX_SLOTS; i++)
		if (slots[i].name[0] && !strcmp(slots[i].name, name))
			return &slots[i];
	return NULL;
}

static struct slot *slot_new(const char *name)
{
	struct slot *s = slot_find(name);
	int i;

	if (s)
		return NULL;
	for (i = 0; i < MAX_SLOTS; i++)
		if (!slots[i].name[0]) {
			memset(&slots[i], 0, sizeof(slots[i]));
			snprintf(slots[i].name, sizeof(slots[i].name), "%s", name);
			slots[i].fd = -1;
			return &slots[i];
		}
	return NULL;
}

/* Finds word "key=value" among words[from..n) and returns value. */
static const char *opt(char **words, int n, int from, const char *key)
{
	size_t len = strlen(key);
	int i;

	for (i = from; i < n; i++)
		if (!strncmp(words[i], key, len) && words[i][len] == '=')
			return words[i] + len + 1;
	return NULL;
}

static int cmd_info(char **w, int n)
{
	struct rmem_info info;
	uint32_t i;
	int err;

	(void)w;
	(void)n;
	if (ioctl(dev_fd, RMEM_IOC_INFO, &info))
		return fail("info", errno, NULL);
	out("info", "vm=%u heaps=%u peers=%u max_receivers=%u quota=0x%" PRIx64
	    " features=0x%" PRIx64 " shm=0x%" PRIx64 " broken=%u",
	    info.vm_id, info.num_heaps, info.num_peers, info.max_receivers,
	    (uint64_t)info.quota_bytes, (uint64_t)info.features,
	    (uint64_t)info.shm_size, !!(info.flags & RMEM_INFO_F_BROKEN));
	err = 0;
	for (i = 0; i < info.num_heaps; i++) {
		struct rmem_heap_info h = { .index = i };
		char r[8];

		if (ioctl(dev_fd, RMEM_IOC_GET_HEAP, &h)) {
			err = fail("heap", errno, "index=%u", i);
			continue;
		}
		rights_str(h.rights, r);
		out("heap", "index=%u name=%s use_case=%s size=0x%" PRIx64
		    " free=0x%" PRIx64 " max_align=0x%" PRIx64 " quota=0x%" PRIx64
		    " flags=0x%x rights=%s", i, h.name[0] ? h.name : "-",
		    h.use_case[0] ? h.use_case : "-", (uint64_t)h.size_bytes,
		    (uint64_t)h.free_bytes, (uint64_t)h.max_align,
		    (uint64_t)h.quota_bytes, h.flags, r);
	}
	for (i = 0; i < info.num_peers; i++) {
		struct rmem_peer_info p = { .index = i };

		if (ioctl(dev_fd, RMEM_IOC_GET_PEER, &p)) {
			err = fail("peer", errno, "index=%u", i);
			continue;
		}
		out("peer", "index=%u vm=%u name=%s", i, p.vm_id,
		    p.name[0] ? p.name : "-");
	}
	return err;
}

/* A heap by index, or by name through GET_HEAP. */
static int heap_index(const char *s, uint32_t *index)
{
	struct rmem_info info;
	uint64_t v;
	uint32_t i;

	if (!parse_u64(s, &v) && v <= UINT32_MAX) {
		*index = (uint32_t)v;
		return 0;
	}
	if (ioctl(dev_fd, RMEM_IOC_INFO, &info))
		return -errno;
	for (i = 0; i < info.num_heaps; i++) {
		struct rmem_heap_info h = { .index = i };

		if (!ioctl(dev_fd, RMEM_IOC_GET_HEAP, &h) && !strcmp(h.name, s)) {
			*index = i;
			return 0;
		}
	}
	return -ENOENT;
}

static int cmd_alloc(char **w, int n)
{
	const char *name = opt(w, n, 1, "as"), *align = opt(w, n, 1, "align");
	uint64_t size, alignment = 0;
	struct rmem_alloc a = { 0 };
	struct slot *s;
	char r[8];
	int err;

	if (n < 3)
		return usage_error("alloc", "alloc HEAP SIZE [align=N] [as=NAME]");
	name = name ? name : "b";
	err = heap_index(w[1], &a.heap);
	if (err)
		return fail("alloc", -err, "heap=%s", w[1]);
	if (parse_u64(w[2], &size) || (align && parse_u64(align, &alignment)))
		return usage_error("alloc", "bad SIZE or align");
	a.size = size;
	a.align = alignment;
	s = slot_new(name);
	if (!s)
		return usage_error("alloc", "name in use or too many buffers");
	if (ioctl(dev_fd, RMEM_IOC_ALLOC, &a)) {
		err = errno;
		s->name[0] = '\0';
		return fail("alloc", err, "name=%s heap=%u size=0x%" PRIx64, name,
			    a.heap, (uint64_t)a.size);
	}
	s->fd = a.fd;
	s->size = a.size;
	s->buffer = a.buffer;
	s->rights = a.rights;
	rights_str(a.rights, r);
	out("alloc", "name=%s heap=%u size=0x%" PRIx64 " buffer=0x%" PRIx64
	    " rights=%s fd=%d", name, a.heap, s->size, s->buffer, r, a.fd);
	return 0;
}

static struct slot *need_slot(const char *verb, char **w, int n, int *err)
{
	struct slot *s;

	if (n < 2) {
		*err = usage_error(verb, "a buffer name is needed");
		return NULL;
	}
	s = slot_find(w[1]);
	if (!s || s->fd < 0) {
		*err = usage_error(verb, "no such open buffer");
		return NULL;
	}
	return s;
}

/* The byte at @off of a pattern: "0xNN" (every byte) or "seq:SEED". */
static int pattern_parse(const char *p, int *byte, uint32_t *seed)
{
	uint64_t v;

	if (!strncmp(p, "seq:", 4)) {
		if (parse_u64(p + 4, &v))
			return -1;
		*byte = -1;
		*seed = (uint32_t)v;
		return 0;
	}
	if (parse_u64(p, &v) || v > 0xff)
		return -1;
	*byte = (int)v;
	return 0;
}

static uint8_t pattern_at(int byte, uint32_t seed, uint64_t off)
{
	uint64_t x;

	if (byte >= 0)
		return (uint8_t)byte;
	x = (off >> 3) * 0x9e3779b97f4a7c15ULL + seed;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 32;
	return (uint8_t)(x >> ((off & 7) * 8));
}

static int dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync sync = { .flags = flags };

	return ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) ? -errno : 0;
}

static int cmd_fill_check(char **w, int n, bool fill)
{
	const char *verb = fill ? "fill" : "check";
	uint64_t rw = fill ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_READ;
	uint64_t i, mismatches = 0, first = UINT64_MAX;
	struct slot *s;
	uint32_t seed = 0;
	uint8_t *p;
	int byte, err;

	s = need_slot(verb, w, n, &err);
	if (!s)
		return err;
	if (n < 3 || pattern_parse(w[2], &byte, &seed))
		return usage_error(verb, "NAME PATTERN (0xNN or seq:SEED)");
	p = mmap(NULL, s->size, fill ? PROT_READ | PROT_WRITE : PROT_READ,
		 MAP_SHARED, s->fd, 0);
	if (p == MAP_FAILED)
		return fail(verb, errno, "name=%s step=mmap", s->name);
	err = dmabuf_sync(s->fd, DMA_BUF_SYNC_START | rw);
	if (err) {
		munmap(p, s->size);
		return fail(verb, -err, "name=%s step=sync", s->name);
	}
	if (fill) {
		for (i = 0; i < s->size; i++)
			p[i] = pattern_at(byte, seed, i);
	} else {
		for (i = 0; i < s->size; i++)
			if (p[i] != pattern_at(byte, seed, i)) {
				if (!mismatches)
					first = i;
				mismatches++;
			}
	}
	dmabuf_sync(s->fd, DMA_BUF_SYNC_END | rw);
	munmap(p, s->size);
	if (fill) {
		out("fill", "name=%s pattern=%s bytes=0x%" PRIx64, s->name, w[2],
		    s->size);
		return 0;
	}
	if (mismatches) {
		out("check", "name=%s pattern=%s mismatches=%" PRIu64
		    " first=0x%" PRIx64 " verdict=bad", s->name, w[2], mismatches,
		    first);
		return -ERANGE;
	}
	out("check", "name=%s pattern=%s mismatches=0 verdict=ok", s->name, w[2]);
	return 0;
}

/* "VM:RIGHTS[,VM:RIGHTS...]" */
static int parse_receivers(const char *s, struct rmem_receiver *to, int max)
{
	char buf[256], *tok, *save = NULL;
	int count = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		uint64_t vm;

		if (!colon || count == max)
			return -1;
		*colon = '\0';
		if (parse_u64(tok, &vm) || vm > UINT32_MAX ||
		    parse_rights(colon + 1, &to[count].rights))
			return -1;
		to[count].vm_id = (uint32_t)vm;
		count++;
	}
	return count;
}

static int cmd_offer(char **w, int n, bool lend)
{
	const char *verb = lend ? "lend" : "share";
	struct rmem_receiver to[16];
	struct rmem_offer o = { 0 };
	struct slot *s;
	int count, err;

	s = need_slot(verb, w, n, &err);
	if (!s)
		return err;
	count = n < 3 ? -1 : parse_receivers(w[2], to, 16);
	if (count < 0)
		return usage_error(verb, "NAME VM:RIGHTS[,VM:RIGHTS...] (rights of r w m)");
	o.fd = s->fd;
	o.num_receivers = (uint32_t)count;
	o.receivers = (uintptr_t)to;
	if (ioctl(dev_fd, lend ? RMEM_IOC_LEND : RMEM_IOC_SHARE, &o))
		return fail(verb, errno, "name=%s to=%s", s->name, w[2]);
	s->handle = o.handle;
	out(verb, "name=%s to=%s handle=0x%" PRIx64, s->name, w[2],
	    (uint64_t)o.handle);
	return 0;
}

static int cmd_donate(char **w, int n)
{
	struct rmem_donate d = { 0 };
	struct slot *s;
	uint64_t vm;
	int err;

	s = need_slot("donate", w, n, &err);
	if (!s)
		return err;
	if (n < 3 || parse_u64(w[2], &vm) || vm > UINT32_MAX)
		return usage_error("donate", "NAME VM");
	d.fd = s->fd;
	d.vm_id = (uint32_t)vm;
	if (ioctl(dev_fd, RMEM_IOC_DONATE, &d))
		return fail("donate", errno, "name=%s to=%s", s->name, w[2]);
	s->handle = d.handle;
	out("donate", "name=%s to=%s handle=0x%" PRIx64, s->name, w[2],
	    (uint64_t)d.handle);
	return 0;
}

static int parse_handle(const char *s, uint64_t *handle)
{
	if (!strcmp(s, "event")) {
		*handle = last_offered;
		return last_offered ? 0 : -1;
	}
	return parse_u64(s, handle);
}

static int cmd_retrieve(char **w, int n)
{
	const char *name = opt(w, n, 2, "as");
	struct rmem_retrieve r = { 0 };
	uint64_t handle;
	struct slot *s;
	char rs[8];
	int err;

	if (n < 2 || parse_handle(w[1], &handle))
		return usage_error("retrieve", "HANDLE|event [as=NAME]");
	r.handle = handle;
	name = name ? name : "b";
	s = slot_new(name);
	if (!s)
		return usage_error("retrieve", "name in use or too many buffers");
	if (ioctl(dev_fd, RMEM_IOC_RETRIEVE, &r)) {
		err = errno;
		s->name[0] = '\0';
		return fail("retrieve", err, "handle=0x%" PRIx64, (uint64_t)r.handle);
	}
	s->fd = r.fd;
	s->size = r.size;
	s->buffer = r.buffer;
	s->handle = r.handle;
	s->rights = r.rights;
	rights_str(r.rights, rs);
	out("retrieve", "name=%s handle=0x%" PRIx64 " size=0x%" PRIx64
	    " rights=%s owner=%u kind=%s buffer=0x%" PRIx64 " fd=%d", name,
	    (uint64_t)r.handle, (uint64_t)r.size, rs, r.owner,
	    kind_name(r.kind), (uint64_t)r.buffer, r.fd);
	return 0;
}

static int cmd_relinquish(char **w, int n)
{
	struct rmem_relinquish r = { .fd = -1 };
	const char *h = opt(w, n, 1, "handle");
	uint64_t handle;
	struct slot *s;
	int err;

	if (h) {
		if (parse_handle(h, &handle))
			return usage_error("relinquish", "handle=HANDLE|event");
		r.handle = handle;
		if (ioctl(dev_fd, RMEM_IOC_RELINQUISH, &r))
			return fail("relinquish", errno, "handle=0x%" PRIx64,
				    (uint64_t)r.handle);
		out("relinquish", "handle=0x%" PRIx64, (uint64_t)r.handle);
		return 0;
	}
	s = need_slot("relinquish", w, n, &err);
	if (!s)
		return err;
	r.fd = s->fd;
	if (ioctl(dev_fd, RMEM_IOC_RELINQUISH, &r))
		return fail("relinquish", errno, "name=%s", s->name);
	out("relinquish", "name=%s handle=0x%" PRIx64, s->name, s->handle);
	return 0;
}

static int cmd_reclaim(char **w, int n)
{
	struct rmem_reclaim r = { 0 };
	struct slot *s;
	int err;

	s = need_slot("reclaim", w, n, &err);
	if (!s)
		return err;
	if (n > 2 && !strcmp(w[2], "revoke"))
		r.flags = RMEM_RECLAIM_REVOKE;
	r.fd = s->fd;
	if (ioctl(dev_fd, RMEM_IOC_RECLAIM, &r))
		return fail("reclaim", errno, "name=%s revoke=%d", s->name,
			    !!r.flags);
	out("reclaim", "name=%s revoke=%d", s->name, !!r.flags);
	return 0;
}

static int cmd_free(char **w, int n)
{
	struct rmem_free f = { 0 };
	struct slot *s;
	int err;

	s = need_slot("free", w, n, &err);
	if (!s)
		return err;
	f.fd = s->fd;
	if (ioctl(dev_fd, RMEM_IOC_FREE, &f))
		return fail("free", errno, "name=%s", s->name);
	out("free", "name=%s buffer=0x%" PRIx64, s->name, s->buffer);
	return 0;
}

static int cmd_close(char **w, int n)
{
	struct slot *s;
	int err;

	s = need_slot("close", w, n, &err);
	if (!s)
		return err;
	if (s->map)
		munmap(s->map, s->size);
	close(s->fd);
	out("close", "name=%s", s->name);
	s->name[0] = '\0';
	s->fd = -1;
	s->map = NULL;
	return 0;
}

static int cmd_bufinfo(char **w, int n)
{
	static const char *const states[] = {
		"pending", "accessible", "offered", "away", "gone", "no-offset",
	};
	struct rmem_buf_info i = { 0 };
	struct slot *s;
	char r[8];
	int err;

	s = need_slot("bufinfo", w, n, &err);
	if (!s)
		return err;
	i.fd = s->fd;
	if (ioctl(dev_fd, RMEM_IOC_BUF_INFO, &i))
		return fail("bufinfo", errno, "name=%s", s->name);
	rights_str(i.rights, r);
	out("bufinfo", "name=%s role=%s state=%s size=0x%" PRIx64 " buffer=0x%"
	    PRIx64 " handle=0x%" PRIx64 " rights=%s kind=%s peer=%u", s->name,
	    i.role == RMEM_ROLE_OWNER ? "owner" : "borrower",
	    i.state < 6 ? states[i.state] : "unknown", (uint64_t)i.size,
	    (uint64_t)i.buffer, (uint64_t)i.handle, r, kind_name(i.kind), i.peer);
	return 0;
}

static int cmd_events(char **w, int n)
{
	const char *t = opt(w, n, 1, "timeout"), *want = opt(w, n, 1, "type");
	uint64_t count = 1, timeout = 30, got = 0;
	struct timespec start, now;
	struct pollfd pfd;
	long left_ms;

	if ((n > 1 && strchr(w[1], '=') == NULL && parse_u64(w[1], &count)) ||
	    (t && parse_u64(t, &timeout)))
		return usage_error("events", "[N] [timeout=S] [type=NAME]");
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (got < count) {
		struct rmem_event ev;
		ssize_t len;
		char r[8];

		clock_gettime(CLOCK_MONOTONIC, &now);
		left_ms = (long)timeout * 1000 -
			  ((now.tv_sec - start.tv_sec) * 1000 +
			   (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left_ms <= 0)
			return fail("events", ETIMEDOUT, "got=%" PRIu64 " want=%" PRIu64,
				    got, count);
		pfd.fd = dev_fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)left_ms) < 0) {
			if (errno == EINTR)
				continue;
			return fail("events", errno, "step=poll");
		}
		if (!(pfd.revents & POLLIN)) {
			if (pfd.revents & (POLLHUP | POLLERR))
				return fail("events", ENODEV, "got=%" PRIu64, got);
			continue;
		}
		len = read(dev_fd, &ev, sizeof(ev));
		if (len < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return fail("events", errno, "step=read");
		}
		if (len != sizeof(ev))
			return fail("events", EIO, "short=%zd", len);
		if (ev.type == RMEM_EVENT_OFFERED)
			last_offered = ev.handle;
		rights_str(ev.rights, r);
		out("event", "type=%s reason=%s handle=0x%" PRIx64 " buffer=0x%"
		    PRIx64 " size=0x%" PRIx64 " peer=%u rights=%s kind=%s heap=%u"
		    " dropped=%u", event_name(ev.type),
		    ev.reason == RMEM_REASON_PEER_GONE ? "peer-gone" : "request",
		    (uint64_t)ev.handle, (uint64_t)ev.buffer, (uint64_t)ev.size,
		    ev.peer, r, kind_name(ev.kind), ev.heap, ev.dropped);
		if (!want || !strcmp(want, event_name(ev.type)))
			got++;
	}
	out("events", "got=%" PRIu64, got);
	return 0;
}

/* Runs a read (or write) of one byte at @p: "ok", "sigbus" or "sigsegv". */
static const char *probe_byte(volatile uint8_t *p, bool write, uint8_t *value)
{
	int sig = fault_probe(p, 1, write, value);

	return !sig ? "ok" : sig == SIGBUS ? "sigbus" : "sigsegv";
}

static int cmd_map(char **w, int n)
{
	bool writable = n > 2 && !strcmp(w[2], "rw");
	struct slot *s;
	int err;

	s = need_slot("map", w, n, &err);
	if (!s)
		return err;
	if (s->map)
		return usage_error("map", "mapped already");
	s->map = mmap(NULL, s->size, PROT_READ | (writable ? PROT_WRITE : 0),
		      MAP_SHARED, s->fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		return fail("map", errno, "name=%s rw=%d", s->name, writable);
	}
	s->map_writable = writable;
	out("map", "name=%s rw=%d", s->name, writable);
	return 0;
}

/* Touches the mapping kept by 'map': ok, or sigbus once it was revoked. */
static int cmd_touch(char **w, int n)
{
	struct slot *s;
	const char *result;
	uint8_t value = 0;
	int err;

	s = need_slot("touch", w, n, &err);
	if (!s)
		return err;
	if (!s->map)
		return usage_error("touch", "not mapped ('map' it first)");
	result = probe_byte((volatile uint8_t *)s->map, false, &value);
	out("touch", "name=%s result=%s value=0x%02x", s->name, result, value);
	return strcmp(result, "ok") ? -EFAULT : 0;
}

/*
 * Tries every way to write a buffer: a writable mapping, and mprotect() of
 * a read-only one to writable (and then a store through it). A store
 * writes back the byte that is there, so a writable buffer keeps its
 * contents. "refused" when all are refused, "writable" when a store went
 * through.
 */
static int cmd_try_write(char **w, int n)
{
	const char *rw_result = "ok", *mprotect_result = "ok", *store = "none";
	struct slot *s;
	uint8_t value;
	void *p;
	int err;

	s = need_slot("try-write", w, n, &err);
	if (!s)
		return err;
	p = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	if (p == MAP_FAILED) {
		rw_result = errname(errno);
	} else {
		if (!strcmp(probe_byte(p, false, &value), "ok"))
			store = probe_byte(p, true, &value);
		munmap(p, s->size);
	}
	p = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
	if (p == MAP_FAILED) {
		mprotect_result = "no-ro-map";
	} else {
		if (mprotect(p, s->size, PROT_READ | PROT_WRITE))
			mprotect_result = errname(errno);
		else if (!strcmp(store, "none") &&
			 !strcmp(probe_byte(p, false, &value), "ok"))
			store = probe_byte(p, true, &value);
		munmap(p, s->size);
	}
	out("try-write", "name=%s mmap_rw=%s mprotect=%s store=%s verdict=%s",
	    s->name, rw_result, mprotect_result, store,
	    !strcmp(store, "ok") ? "writable" : "refused");
	return 0;
}

static int cmd_try_mmap(char **w, int n)
{
	struct slot *s;
	void *p;
	int err;

	s = need_slot("try-mmap", w, n, &err);
	if (!s)
		return err;
	p = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
	if (p == MAP_FAILED) {
		out("try-mmap", "name=%s result=%s", s->name, errname(errno));
		return 0;
	}
	munmap(p, s->size);
	out("try-mmap", "name=%s result=ok", s->name);
	return 0;
}

static int cmd_sleep(char **w, int n)
{
	uint64_t ms;

	if (n < 2 || parse_u64(w[1], &ms))
		return usage_error("sleep", "MILLISECONDS");
	usleep((useconds_t)(ms * 1000));
	out("sleep", "ms=%" PRIu64, ms);
	return 0;
}

/* --- bench: latencies from inside the guest ------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Prints the median and p99 of @n samples (ns) of @op; sorts them. */
static void bench_report(const char *op, uint64_t size, uint64_t *ns,
			 unsigned int n)
{
	unsigned int p99 = (n * 99 + 99) / 100;

	qsort(ns, n, sizeof(*ns), cmp_u64);
	out("bench", "op=%s size=0x%" PRIx64 " rounds=%u median_us=%.1f p99_us=%.1f",
	    op, size, n, ns[n / 2] / 1000.0, ns[(p99 ? p99 : 1) - 1] / 1000.0);
}

/* Waits up to @timeout_ms for the next event of @type (others are read and
 * dropped); 0 or an errno. */
static int bench_wait_event(uint32_t type, int timeout_ms, struct rmem_event *ev)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		struct pollfd pfd = { .fd = dev_fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - now_ns()) / 1000000;
		ssize_t len;

		if (left <= 0)
			return ETIMEDOUT;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return errno;
		if (pfd.revents & (POLLHUP | POLLERR))
			return ENODEV;
		if (!(pfd.revents & POLLIN))
			continue;
		len = read(dev_fd, ev, sizeof(*ev));
		if (len < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (len != sizeof(*ev))
			return len < 0 ? errno : EIO;
		if (ev->type == type)
			return 0;
	}
}

struct bench_args {
	uint32_t heap;
	uint64_t size;
	unsigned int rounds;
	uint32_t peer;
};

static int bench_parse(char **w, int n, bool with_peer, struct bench_args *a)
{
	const char *rounds = opt(w, n, 2, "rounds"), *peer = opt(w, n, 2, "to");
	uint64_t v = 1000;

	if (n < 4 || heap_index(w[2], &a->heap) || parse_u64(w[3], &a->size) ||
	    (rounds && parse_u64(rounds, &v)) || !v || v > 1000000)
		return -1;
	a->rounds = (unsigned int)v;
	if (with_peer) {
		if (!peer || parse_u64(peer, &v) || !v || v > UINT32_MAX)
			return -1;
		a->peer = (uint32_t)v;
	}
	return 0;
}

/*
 * bench alloc HEAP SIZE [rounds=N]: ALLOC and FREE (+ close) of SIZE, N
 * times; beside it the guest's ordinary memory: mmap of SIZE anonymous
 * pages, zeroing them all, munmap (what a system heap allocation costs).
 */
static int bench_alloc(char **w, int n)
{
	uint64_t *alloc_ns, *free_ns, *plain_ns;
	struct bench_args a;
	unsigned int i;
	int err = 0;

	if (bench_parse(w, n, false, &a))
		return usage_error("bench", "bench alloc HEAP SIZE [rounds=N]");
	alloc_ns = calloc(a.rounds, sizeof(uint64_t));
	free_ns = calloc(a.rounds, sizeof(uint64_t));
	plain_ns = calloc(a.rounds, sizeof(uint64_t));
	if (!alloc_ns || !free_ns || !plain_ns) {
		err = fail("bench", ENOMEM, "op=alloc");
		goto out;
	}
	for (i = 0; i < a.rounds; i++) {
		struct rmem_alloc al = { .heap = a.heap, .size = a.size };
		struct rmem_free fr = { 0 };
		uint64_t t0 = now_ns(), t1;

		if (ioctl(dev_fd, RMEM_IOC_ALLOC, &al)) {
			err = fail("bench", errno, "op=alloc round=%u", i);
			goto out;
		}
		t1 = now_ns();
		fr.fd = al.fd;
		if (ioctl(dev_fd, RMEM_IOC_FREE, &fr)) {
			err = fail("bench", errno, "op=free round=%u", i);
			close(al.fd);
			goto out;
		}
		close(al.fd);
		alloc_ns[i] = t1 - t0;
		free_ns[i] = now_ns() - t1;
	}
	for (i = 0; i < a.rounds; i++) {
		uint64_t t0 = now_ns();
		void *p = mmap(NULL, a.size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			err = fail("bench", errno, "op=system-alloc");
			goto out;
		}
		memset(p, 0, a.size);
		munmap(p, a.size);
		plain_ns[i] = now_ns() - t0;
	}
	bench_report("alloc", a.size, alloc_ns, a.rounds);
	bench_report("free", a.size, free_ns, a.rounds);
	bench_report("system-alloc-zero-free", a.size, plain_ns, a.rounds);
out:
	free(alloc_ns);
	free(free_ns);
	free(plain_ns);
	return err;
}

/*
 * bench share HEAP SIZE to=VM [rounds=N]: one buffer of SIZE, shared
 * read-only (with CPU map) to VM N times: SHARE until the RETRIEVED event
 * (the peer's dma-buf exists and is mapped in its region), until the
 * RELINQUISHED event, and the RECLAIM. The peer runs "bench peer".
 */
static int bench_share(char **w, int n)
{
	uint64_t *retrieved_ns, *back_ns, *reclaim_ns;
	struct rmem_alloc al = { 0 };
	struct rmem_free fr = { 0 };
	struct rmem_receiver to;
	struct bench_args a;
	unsigned int i;
	int err = 0;

	if (bench_parse(w, n, true, &a))
		return usage_error("bench", "bench share HEAP SIZE to=VM [rounds=N]");
	retrieved_ns = calloc(a.rounds, sizeof(uint64_t));
	back_ns = calloc(a.rounds, sizeof(uint64_t));
	reclaim_ns = calloc(a.rounds, sizeof(uint64_t));
	al.heap = a.heap;
	al.size = a.size;
	if (!retrieved_ns || !back_ns || !reclaim_ns || ioctl(dev_fd, RMEM_IOC_ALLOC, &al)) {
		err = fail("bench", retrieved_ns && back_ns && reclaim_ns ? errno : ENOMEM,
			   "op=share-setup");
		goto out;
	}
	to.vm_id = a.peer;
	to.rights = RMEM_RIGHT_READ | RMEM_RIGHT_CPU_MAP;
	for (i = 0; i < a.rounds; i++) {
		struct rmem_offer o = { .fd = al.fd, .num_receivers = 1,
					.receivers = (uintptr_t)&to };
		struct rmem_reclaim r = { .fd = al.fd };
		struct rmem_event ev;
		uint64_t t0 = now_ns(), t1, t2;

		if (ioctl(dev_fd, RMEM_IOC_SHARE, &o)) {
			err = fail("bench", errno, "op=share round=%u", i);
			goto done;
		}
		err = bench_wait_event(RMEM_EVENT_RETRIEVED, 60000, &ev);
		t1 = now_ns();
		if (!err)
			err = bench_wait_event(RMEM_EVENT_RELINQUISHED, 60000, &ev);
		if (err) {
			err = fail("bench", err, "op=share-wait round=%u", i);
			goto done;
		}
		t2 = now_ns();
		if (ioctl(dev_fd, RMEM_IOC_RECLAIM, &r)) {
			err = fail("bench", errno, "op=reclaim round=%u", i);
			goto done;
		}
		retrieved_ns[i] = t1 - t0;
		back_ns[i] = t2 - t0;
		reclaim_ns[i] = now_ns() - t2;
	}
	bench_report("share-to-peer-retrieved", a.size, retrieved_ns, a.rounds);
	bench_report("share-to-peer-relinquished", a.size, back_ns, a.rounds);
	bench_report("reclaim", a.size, reclaim_ns, a.rounds);
done:
	fr.fd = al.fd;
	ioctl(dev_fd, RMEM_IOC_FREE, &fr);
	close(al.fd);
out:
	free(retrieved_ns);
	free(back_ns);
	free(reclaim_ns);
	return err;
}

/*
 * bench peer [rounds=N]: N times, the next OFFERED: RETRIEVE (the dma-buf
 * fd, its pages mapped in our region) and RELINQUISH (+ close).
 */
static int bench_peer(char **w, int n)
{
	const char *rounds_opt = opt(w, n, 2, "rounds");
	uint64_t *retrieve_ns, *relinquish_ns, rounds = 1000, size = 0;
	unsigned int i;
	int err = 0;

	if ((rounds_opt && parse_u64(rounds_opt, &rounds)) || !rounds || rounds > 1000000)
		return usage_error("bench", "bench peer [rounds=N]");
	retrieve_ns = calloc(rounds, sizeof(uint64_t));
	relinquish_ns = calloc(rounds, sizeof(uint64_t));
	if (!retrieve_ns || !relinquish_ns) {
		err = fail("bench", ENOMEM, "op=peer");
		goto out;
	}
	for (i = 0; i < rounds; i++) {
		struct rmem_retrieve r = { 0 };
		struct rmem_relinquish q = { 0 };
		struct rmem_event ev;
		uint64_t t0, t1;

		/* The owner times its allocations first: minutes under TCG. */
		err = bench_wait_event(RMEM_EVENT_OFFERED, 3600000, &ev);
		if (err) {
			err = fail("bench", err, "op=peer-wait round=%u", i);
			goto out;
		}
		r.handle = ev.handle;
		t0 = now_ns();
		if (ioctl(dev_fd, RMEM_IOC_RETRIEVE, &r)) {
			err = fail("bench", errno, "op=retrieve round=%u", i);
			goto out;
		}
		t1 = now_ns();
		q.fd = r.fd;
		if (ioctl(dev_fd, RMEM_IOC_RELINQUISH, &q)) {
			err = fail("bench", errno, "op=relinquish round=%u", i);
			close(r.fd);
			goto out;
		}
		close(r.fd);
		retrieve_ns[i] = t1 - t0;
		relinquish_ns[i] = now_ns() - t1;
		size = r.size;
	}
	bench_report("retrieve", size, retrieve_ns, (unsigned int)rounds);
	bench_report("relinquish", size, relinquish_ns, (unsigned int)rounds);
out:
	free(retrieve_ns);
	free(relinquish_ns);
	return err;
}

static int cmd_bench(char **w, int n)
{
	if (n >= 2 && !strcmp(w[1], "alloc"))
		return bench_alloc(w, n);
	if (n >= 2 && !strcmp(w[1], "share"))
		return bench_share(w, n);
	if (n >= 2 && !strcmp(w[1], "peer"))
		return bench_peer(w, n);
	return usage_error("bench", "bench alloc|share|peer ...");
}

/* --- bad: malformed requests through RMEM_IOC_RAW ----------------------- */

struct bad_case {
	const char *name;
	uint8_t req[64];
	uint32_t req_len;
	uint32_t resp_len;
	int want_status;	/* VIRTIO_RMEM_S_*, or -1: used length 0 */
};

static void put_le32(uint8_t *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static int run_bad(struct bad_case *c, int *bad)
{
	uint8_t resp[256];
	struct rmem_raw raw = {
		.req = (uintptr_t)c->req,
		.resp = (uintptr_t)resp,
		.req_len = c->req_len,
		.resp_len = c->resp_len,
	};
	const char *got = "none", *want;
	uint32_t status = 0;
	bool ok;

	memset(resp, 0xee, sizeof(resp));
	if (ioctl(dev_fd, RMEM_IOC_RAW, &raw))
		return fail("bad", errno, "case=%s", c->name);
	if (raw.used_len >= 8) {
		status = resp[0] | resp[1] << 8 | resp[2] << 16 |
			 (uint32_t)resp[3] << 24;
		got = status_name(status);
	}
	if (c->want_status < 0) {
		want = "none";
		ok = raw.used_len == 0;
	} else {
		want = status_name((uint32_t)c->want_status);
		ok = raw.used_len == 8 && status == (uint32_t)c->want_status;
	}
	if (!ok)
		(*bad)++;
	out("bad", "case=%s used=%u status=%s want=%s verdict=%s", c->name,
	    raw.used_len, got, want, ok ? "ok" : "bad");
	return 0;
}

static int cmd_bad(char **w, int n)
{
	/* Values nobody was given: 64-bit and never handed out in a test. */
	const uint64_t stranger = 0x5eed5eed5eed5eedULL;
	struct bad_case cases[20];
	struct rmem_info info;
	int count = 0, bad = 0, i, err;
	struct bad_case *c;

	(void)w;
	(void)n;
	if (ioctl(dev_fd, RMEM_IOC_INFO, &info))
		return fail("bad", errno, "step=info");
	memset(cases, 0, sizeof(cases));

#define BAD(label, type, rlen, wlen, status) \
	(c = &cases[count++], c->name = (label), \
	 put_le32(c->req, (type)), c->req_len = (rlen), \
	 c->resp_len = (wlen), c->want_status = (status))

	BAD("no-writable-part", VIRTIO_RMEM_REQ_GET_HEAP, 16, 0, -1);
	BAD("writable-part-4-bytes", VIRTIO_RMEM_REQ_GET_HEAP, 16, 4, -1);
	BAD("unknown-type", 0x99, 16, 112, VIRTIO_RMEM_S_UNSUPPORTED);
	/* Shorter than its header: malformed (how the device reads the spec). */
	BAD("header-4-bytes", 0x7777, 4, 8, VIRTIO_RMEM_S_INVALID);
	BAD("get-heap-too-long", VIRTIO_RMEM_REQ_GET_HEAP, 24, 112,
	    VIRTIO_RMEM_S_INVALID);
	BAD("get-heap-too-short", VIRTIO_RMEM_REQ_GET_HEAP, 12, 112,
	    VIRTIO_RMEM_S_INVALID);
	BAD("hdr-reserved-set", VIRTIO_RMEM_REQ_GET_HEAP, 16, 112,
	    VIRTIO_RMEM_S_INVALID);
	put_le32(c->req + 4, 1);
	BAD("response-room-too-small", VIRTIO_RMEM_REQ_GET_HEAP, 16, 8,
	    VIRTIO_RMEM_S_INVALID);
	BAD("get-heap-missing", VIRTIO_RMEM_REQ_GET_HEAP, 16, 112,
	    VIRTIO_RMEM_S_NOT_FOUND);
	put_le32(c->req + 8, info.num_heaps);
	BAD("get-peer-missing", VIRTIO_RMEM_REQ_GET_PEER, 16, 48,
	    VIRTIO_RMEM_S_NOT_FOUND);
	put_le32(c->req + 8, info.num_peers);
	BAD("alloc-size-0", VIRTIO_RMEM_REQ_ALLOC, 32, 40, VIRTIO_RMEM_S_INVALID);
	BAD("alloc-align-3", VIRTIO_RMEM_REQ_ALLOC, 32, 40,
	    VIRTIO_RMEM_S_INVALID);
	put_le64(c->req + 16, 4096);
	put_le64(c->req + 24, 3);
	BAD("alloc-flags-set", VIRTIO_RMEM_REQ_ALLOC, 32, 40,
	    VIRTIO_RMEM_S_INVALID);
	put_le32(c->req + 12, 1);
	put_le64(c->req + 16, 4096);
	BAD("alloc-size-overflows", VIRTIO_RMEM_REQ_ALLOC, 32, 40,
	    VIRTIO_RMEM_S_INVALID);
	put_le64(c->req + 16, 0xfffffffffffff001ULL);
	BAD("free-stranger", VIRTIO_RMEM_REQ_FREE, 16, 8,
	    VIRTIO_RMEM_S_NOT_FOUND);
	put_le64(c->req + 8, stranger);
	BAD("retrieve-stranger", VIRTIO_RMEM_REQ_RETRIEVE, 16, 48,
	    VIRTIO_RMEM_S_NOT_FOUND);
	put_le64(c->req + 8, stranger);
	BAD("relinquish-stranger", VIRTIO_RMEM_REQ_RELINQUISH, 16, 8,
	    VIRTIO_RMEM_S_NOT_FOUND);
	put_le64(c->req + 8, stranger);
	BAD("share-no-receivers", VIRTIO_RMEM_REQ_SHARE, 24, 16,
	    VIRTIO_RMEM_S_INVALID);
	put_le64(c->req + 8, stranger);
	BAD("share-count-mismatch", VIRTIO_RMEM_REQ_SHARE, 32, 16,
	    VIRTIO_RMEM_S_INVALID);
	put_le64(c->req + 8, stranger);
	put_le32(c->req + 16, 2);
	put_le32(c->req + 24, 2);
	put_le32(c->req + 28, RMEM_RIGHT_READ);
	BAD("reclaim-undefined-flag", VIRTIO_RMEM_REQ_RECLAIM, 24, 8,
	    VIRTIO_RMEM_S_INVALID);
	put_le64(c->req + 8, stranger);
	put_le32(c->req + 16, 0x80);
#undef BAD

	for (i = 0; i < count; i++) {
		err = run_bad(&cases[i], &bad);
		if (err)
			return err;
	}
	out("bad-done", "cases=%d bad=%d", count, bad);
	return bad ? -ERANGE : 0;
}

static int cmd_help(char **w, int n)
{
	(void)w;
	(void)n;
	puts("rmemtool [-d DEV] COMMAND... (each command one argument, words split by spaces)\n"
	     "  info                                  device, heaps, peers\n"
	     "  alloc HEAP SIZE [align=N] [as=NAME]   HEAP: index or name; SIZE: 4096, 64K, 1M\n"
	     "  fill NAME PATTERN | check NAME PATTERN   PATTERN: 0xNN or seq:SEED\n"
	     "  share|lend NAME VM:RIGHTS[,...]       RIGHTS: letters r w m (m: CPU map)\n"
	     "  donate NAME VM\n"
	     "  retrieve HANDLE|event [as=NAME]       event: the last OFFERED handle read\n"
	     "  relinquish NAME | relinquish handle=HANDLE|event\n"
	     "  reclaim NAME [revoke] | free NAME | close NAME | bufinfo NAME\n"
	     "  events [N] [timeout=S] [type=OFFERED|RETRIEVED|RELINQUISHED|REVOKED|DONATED]\n"
	     "  map NAME [rw] | touch NAME            keep a mapping; read it (ok or sigbus)\n"
	     "  try-write NAME | try-mmap NAME        what writing / mapping does\n"
	     "  bad                                   malformed requests (raw_requests=1)\n"
	     "  sleep MS\n"
	     "  bench alloc HEAP SIZE [rounds=N]      ALLOC/FREE, and mmap+zero of SIZE\n"
	     "  bench share HEAP SIZE to=VM [rounds=N]   share to VM until retrieved\n"
	     "  bench peer [rounds=N]                 the receiving side of bench share\n"
	     "Prefix a command with expect=ERRNO|ok to require that outcome, or ? to allow any.");
	return 0;
}

static const struct {
	const char *verb;
	int (*run)(char **w, int n);
	bool needs_dev;
} commands[] = {
	{ "info", cmd_info, true },
	{ "alloc", cmd_alloc, true },
	{ "share", NULL, true },
	{ "lend", NULL, true },
	{ "donate", cmd_donate, true },
	{ "retrieve", cmd_retrieve, true },
	{ "relinquish", cmd_relinquish, true },
	{ "reclaim", cmd_reclaim, true },
	{ "free", cmd_free, true },
	{ "close", cmd_close, false },
	{ "bufinfo", cmd_bufinfo, true },
	{ "fill", NULL, false },
	{ "check", NULL, false },
	{ "events", cmd_events, true },
	{ "map", cmd_map, false },
	{ "touch", cmd_touch, false },
	{ "try-write", cmd_try_write, false },
	{ "try-mmap", cmd_try_mmap, false },
	{ "bad", cmd_bad, true },
	{ "sleep", cmd_sleep, false },
	{ "bench", cmd_bench, true },
	{ "help", cmd_help, false },
};

static int run_command(char **w, int n)
{
	size_t i;
	int err;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(w[0], commands[i].verb))
			continue;
		if (commands[i].needs_dev) {
			err = open_dev();
			if (err)
				return fail(w[0], -err, "dev=%s", dev_path);
		}
		if (!strcmp(w[0], "share") || !strcmp(w[0], "lend"))
			return cmd_offer(w, n, w[0][0] == 'l');
		if (!strcmp(w[0], "fill") || !strcmp(w[0], "check"))
			return cmd_fill_check(w, n, w[0][0] == 'f');
		return commands[i].run(w, n);
	}
	return usage_error(w[0], "unknown command (see rmemtool help)");
}

int main(int argc, char **argv)
{
	int arg = 1, ran = 0, failed = 0;

	if (argc > 2 && !strcmp(argv[1], "-d")) {
		dev_path = argv[2];
		arg = 3;
	}
	if (arg >= argc) {
		cmd_help(NULL, 0);
		return 2;
	}
	for (; arg < argc; arg++) {
		char line[512], *w[MAX_WORDS], *save = NULL, *tok;
		int n = 0, err, want = 0;
		bool any = false, expect = false;

		snprintf(line, sizeof(line), "%s", argv[arg]);
		for (tok = strtok_r(line, " ", &save); tok && n < MAX_WORDS;
		     tok = strtok_r(NULL, " ", &save))
			w[n++] = tok;
		if (!n)
			continue;
		if (!strcmp(w[0], "?")) {
			any = true;
		} else if (!strncmp(w[0], "expect=", 7)) {
			expect = true;
			want = errnum(w[0] + 7);
			if (want < 0) {
				usage_error("expect", "unknown errno name");
				failed++;
				break;
			}
		}
		if (any || expect) {
			memmove(w, w + 1, (size_t)(n - 1) * sizeof(w[0]));
			n--;
			if (!n)
				continue;
		}
		ran++;
		err = run_command(w, n);
		if (expect) {
			bool ok = -err == want;

			out("expect", "command=%s want=%s got=%s verdict=%s", w[0],
			    errname(want), errname(-err), ok ? "ok" : "bad");
			if (!ok) {
				failed++;
				break;
			}
		} else if (err && !any) {
			failed++;
			break;
		}
	}
	out("done", "commands=%d failed=%d", ran, failed);
	return failed ? 1 : 0;
}
