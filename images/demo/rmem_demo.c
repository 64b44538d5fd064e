// SPDX-License-Identifier: GPL-2.0
/*
 * rmem-demo: the secure playback demo's guest program (images/demo/README.md),
 * one role per guest, all driving /dev/rmem (guest_driver/uapi/rmem.h):
 *
 *   decrypt       VM 1. A source stage stands in for the network: it makes
 *                 each frame (header + a pattern of its number) and encrypts
 *                 it with AES-128-CTR under a key drawn from getrandom() that
 *                 never leaves this process. The decrypt stage decrypts it
 *                 with OpenSSL's libcrypto straight into one of three
 *                 restricted buffers (the mmap of the dma-buf: the decrypted
 *                 frame exists nowhere else; the source's plaintext, the
 *                 content provider's, is encrypted in place before the
 *                 decrypt stage sees it), shares it read-only
 *                 with display and reuses a buffer once display gave it back
 *                 (RELINQUISHED, then RECLAIM). It times SHARE to the
 *                 RETRIEVED event on its own clock.
 *   display       VM 2. Retrieves every frame offered, maps it read-only,
 *                 verifies header and payload checksum, "scans it out"
 *                 (counts it), tries to write it (every way must be
 *                 refused), relinquishes it.
 *   infotainment  VM 3. An ordinary guest that must never see a frame:
 *                 retrieves a leaked frame handle, allocates from
 *                 secure-video and past its secure-ui quota, reads and
 *                 writes its shared memory window where nothing is granted
 *                 (rmem-vmm answers with an external abort: SIGBUS). Every
 *                 attempt must be denied.
 *   selftest      No device: frames through the source and decrypt stages
 *                 into ordinary memory, verified; a corrupted frame and a
 *                 wrong key must be caught (for a build machine).
 *
 * Every line it prints starts "RMEM-DEMO-<WHAT>" with key=value fields
 * (images/l1/scenarios/playback.sh sums them up). The exit status is 0 iff
 * the role did all it should and every isolation check held; 2 for a usage
 * error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "guest_driver/rmemtool/fault_probe.h"
#include "guest_driver/uapi/rmem.h"

#define NUM_BUFFERS 3		/* triple buffering */
#define MAX_FRAME_SIZE (256ULL << 20)
#define PROGRESS_NS (2ULL * 1000000000ULL)	/* at most one progress line per 2 s */

/* --- options --------------------------------------------------------------- */

struct opts {
	const char *role;
	const char *dev;
	unsigned int frames;
	uint64_t frame_size;
	const char *heap;	/* decrypt: where frames live; infotainment: tried */
	const char *peer;	/* decrypt: who is shown the frames */
	const char *ui_heap;	/* infotainment: its own heap, with a quota */
	uint64_t handle;	/* infotainment: the leaked frame handle */
	unsigned int write_every;	/* display: try to write every Nth frame */
	unsigned int timeout_s;	/* the longest any one wait may take */
};

static struct opts o = {
	.dev = "/dev/rmem",
	.frames = 30,
	.frame_size = 8ULL << 20,
	.heap = "secure-video",
	.peer = "display",
	.ui_heap = "secure-ui",
	.write_every = 1,
	.timeout_s = 300,
};

static void usage(FILE *f)
{
	fputs("usage: rmem-demo decrypt|display|infotainment|selftest [options]\n"
	      "The secure playback demo's guest program (images/demo/README.md).\n"
	      "  --frames N          frames in the stream (default 30)\n"
	      "  --frame-size BYTES  bytes per frame, a 4 KiB multiple; K/M suffixes (default 8M)\n"
	      "  --heap NAME         decrypt: the frames' heap; infotainment: the heap it is\n"
	      "                      refused (default secure-video)\n"
	      "  --to NAME           decrypt: the VM shown the frames (default display)\n"
	      "  --ui-heap NAME      infotainment: its own heap, with a quota (default secure-ui)\n"
	      "  --handle HANDLE     infotainment: the leaked frame handle to try\n"
	      "  --write-every N     display: try to write every Nth frame (default 1)\n"
	      "  --timeout S         the longest one wait may take (default 300)\n"
	      "  --device PATH       default /dev/rmem\n", f);
}

/* A number with an optional K, M or G (binary) suffix. */
static int parse_size(const char *s, uint64_t *out)
{
	static const char suffixes[] = "KMG";
	unsigned long long v;
	const char *at;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -1;
	if (*end && (at = strchr(suffixes, *end)) != NULL && end[1] == '\0') {
		unsigned int shift = 10 * (unsigned int)(at - suffixes + 1);

		if (v > (UINT64_MAX >> shift))
			return -1;
		v <<= shift;
	} else if (*end) {
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "frames", required_argument, NULL, 'n' },
		{ "frame-size", required_argument, NULL, 's' },
		{ "heap", required_argument, NULL, 'H' },
		{ "to", required_argument, NULL, 't' },
		{ "ui-heap", required_argument, NULL, 'u' },
		{ "handle", required_argument, NULL, 'k' },
		{ "write-every", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "device", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		const char *bad = NULL;

		switch (c) {
		case 'n':
			if (parse_size(optarg, &v) || !v || v > 1000000)
				bad = "--frames: 1 to 1000000";
			o.frames = (unsigned int)v;
			break;
		case 's':
			if (parse_size(optarg, &v) || v < 4096 || v % 4096 || v > MAX_FRAME_SIZE)
				bad = "--frame-size: a multiple of 4 KiB from 4 KiB to 256 MiB";
			o.frame_size = v;
			break;
		case 'H':
			o.heap = optarg;
			break;
		case 't':
			o.peer = optarg;
			break;
		case 'u':
			o.ui_heap = optarg;
			break;
		case 'k':
			if (parse_size(optarg, &o.handle) || !o.handle)
				bad = "--handle: a non-zero number";
			break;
		case 'w':
			if (parse_size(optarg, &v) || !v || v > UINT32_MAX)
				bad = "--write-every: a positive number";
			o.write_every = (unsigned int)v;
			break;
		case 'T':
			if (parse_size(optarg, &v) || !v || v > 86400)
				bad = "--timeout: 1 to 86400 seconds";
			o.timeout_s = (unsigned int)v;
			break;
		case 'd':
			o.dev = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (bad) {
			fprintf(stderr, "rmem-demo: %s (got '%s')\n", bad, optarg);
			return -1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "rmem-demo: %s\n", optind >= argc ? "which role?" :
			"one role only");
		usage(stderr);
		return -1;
	}
	o.role = argv[optind];
	return 0;
}

/* --- small helpers ------------------------------------------------------------ */

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *errname(int err)
{
	const char *name = err ? strerrorname_np(err) : "ok";

	return name ? name : "E?";
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median and p99 (nearest rank) of @n samples, sorted in place. */
static void percentiles(uint64_t *v, unsigned int n, uint64_t *median, uint64_t *p99)
{
	unsigned int rank = (n * 99 + 99) / 100;

	*median = *p99 = 0;
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_u64);
	*median = v[n / 2];
	*p99 = v[(rank ? rank : 1) - 1];
}

/* Condition waits on CLOCK_MONOTONIC, the clock every deadline here uses. */
static void cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &attr);
	pthread_condattr_destroy(&attr);
}

/* Waits on @cv until @deadline (CLOCK_MONOTONIC ns); false once it passed. */
static bool cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline)
{
	struct timespec t = {
		.tv_sec = (time_t)(deadline / 1000000000ULL),
		.tv_nsec = (long)(deadline % 1000000000ULL),
	};

	return pthread_cond_timedwait(cv, mu, &t) != ETIMEDOUT || now_ns() < deadline;
}

static uint64_t deadline_from_now(void)
{
	return now_ns() + (uint64_t)o.timeout_s * 1000000000ULL;
}

static int dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync sync = { .flags = flags };

	return ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) ? errno : 0;
}

/* --- frames ------------------------------------------------------------------- */

/*
 * A frame is a header and a payload, little-endian, filling the buffer. The
 * payload is a pattern of the frame's number, so a frame from another
 * position of the stream fails its header and its checksum.
 */
#define FRAME_MAGIC 0x464d4452U	/* "RDMF" */

struct frame_header {
	uint32_t magic;
	uint32_t header_bytes;	/* sizeof(struct frame_header) */
	uint32_t number;	/* 0 .. count - 1 */
	uint32_t count;		/* frames in the stream */
	uint64_t payload_bytes;
	uint64_t checksum;	/* payload_checksum() of the payload */
	uint8_t reserved[32];	/* 0 */
};
_Static_assert(sizeof(struct frame_header) == 64, "the header is 64 bytes");

static uint64_t pattern_word(uint32_t frame, uint64_t index)
{
	uint64_t x = ((uint64_t)frame << 40) + index + 0x9e3779b97f4a7c15ULL;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * A 64-bit multiply-rotate hash of the payload's words: each step is a
 * bijection of the state, so any one changed word changes the result, and
 * the order matters. It proves the bytes arrived intact, not who made them
 * (the key does that: a frame decrypted with any other key has no valid
 * header).
 */
static uint64_t payload_checksum(const uint64_t *w, uint64_t words)
{
	uint64_t h = 0x243f6a8885a308d3ULL ^ words, i;

	for (i = 0; i < words; i++) {
		h ^= w[i];
		h = ((h << 29) | (h >> 35)) * 0x100000001b3ULL;
	}
	return h;
}

/* Writes frame @n of @count in plain text into @buf (the source's own memory). */
static void make_frame(uint8_t *buf, uint64_t size, uint32_t n, uint32_t count)
{
	struct frame_header *h = (struct frame_header *)buf;
	uint64_t *w = (uint64_t *)(buf + sizeof(*h)), words = (size - sizeof(*h)) / 8, i;

	for (i = 0; i < words; i++)
		w[i] = pattern_word(n, i);
	memset(h, 0, sizeof(*h));
	h->magic = FRAME_MAGIC;
	h->header_bytes = sizeof(*h);
	h->number = n;
	h->count = count;
	h->payload_bytes = size - sizeof(*h);
	h->checksum = payload_checksum(w, words);
}

enum verdict { FRAME_OK, FRAME_BAD_HEADER, FRAME_WRONG_NUMBER, FRAME_BAD_CHECKSUM };

static const char *verdict_name(enum verdict v)
{
	static const char *const names[] = { "ok", "bad-header", "wrong-number", "bad-checksum" };

	return names[v];
}

/* Checks the frame at @buf (read in place) against position @n of @count. */
static enum verdict check_frame(const uint8_t *buf, uint64_t size, uint32_t n, uint32_t count)
{
	struct frame_header h;
	const uint64_t *w = (const uint64_t *)(buf + sizeof(h));
	uint64_t words = (size - sizeof(h)) / 8;
	static const uint8_t zero[sizeof(h.reserved)];

	memcpy(&h, buf, sizeof(h));
	if (h.magic != FRAME_MAGIC || h.header_bytes != sizeof(h) || h.count != count ||
	    h.payload_bytes != size - sizeof(h) || memcmp(h.reserved, zero, sizeof(zero)))
		return FRAME_BAD_HEADER;
	if (h.number != n)
		return FRAME_WRONG_NUMBER;
	return payload_checksum(w, words) == h.checksum ? FRAME_OK : FRAME_BAD_CHECKSUM;
}

/* --- AES-128-CTR --------------------------------------------------------------- */

/*
 * The stream's secrets, drawn from getrandom() in the decrypt VM and never
 * written anywhere else: the key, and a nonce that fills the IV's first 8
 * bytes. Frame n's IV is nonce || n (32 bits, big-endian) || 0 (32-bit block
 * counter): unique per frame, and a frame (at most 256 MiB, 2^24 blocks)
 * never counts into the next frame's IVs.
 */
struct stream_keys {
	uint8_t key[16];
	uint8_t nonce[8];
};

static int draw_keys(struct stream_keys *k)
{
	if (getrandom(k, sizeof(*k), 0) != (ssize_t)sizeof(*k))
		return errno ? errno : EIO;
	return 0;
}

static void frame_iv(const struct stream_keys *k, uint32_t n, uint8_t iv[16])
{
	memcpy(iv, k->nonce, 8);
	iv[8] = (uint8_t)(n >> 24);
	iv[9] = (uint8_t)(n >> 16);
	iv[10] = (uint8_t)(n >> 8);
	iv[11] = (uint8_t)n;
	memset(iv + 12, 0, 4);
}

/*
 * AES-128-CTR of @len bytes from @in to @out (they may be the same) with
 * frame @n's IV. CTR's encryption and decryption are the same operation.
 */
static int aes_ctr(EVP_CIPHER_CTX *ctx, const struct stream_keys *k, uint32_t n,
		   const uint8_t *in, uint8_t *out, uint64_t len)
{
	uint8_t iv[16];
	int outl;

	frame_iv(k, n, iv);
	if (!EVP_CipherInit_ex(ctx, EVP_aes_128_ctr(), NULL, k->key, iv, 1))
		return EIO;
	while (len) {
		int chunk = len > (1U << 30) ? 1 << 30 : (int)len;

		if (!EVP_CipherUpdate(ctx, out, &outl, in, chunk) || outl != chunk)
			return EIO;
		in += chunk;
		out += chunk;
		len -= (uint64_t)chunk;
	}
	return 0;
}

/* The source stage: frame @n, encrypted, in @net (the "network" buffer). */
static int source_frame(EVP_CIPHER_CTX *ctx, const struct stream_keys *k, uint8_t *net,
			uint32_t n)
{
	make_frame(net, o.frame_size, n, o.frames);
	return aes_ctr(ctx, k, n, net, net, o.frame_size);
}

/* --- the device ------------------------------------------------------------------ */

static int dev_fd = -1;

static int open_device(void)
{
	dev_fd = open(o.dev, O_RDWR | O_CLOEXEC);
	if (dev_fd < 0) {
		say("RMEM-DEMO-ERROR what=open device=%s error=%s", o.dev, errname(errno));
		return -1;
	}
	return 0;
}

/* The heap called @name; ENOENT if this VM is shown none. */
static int find_heap(const char *name, struct rmem_heap_info *out)
{
	struct rmem_info info;
	uint32_t i;

	if (ioctl(dev_fd, RMEM_IOC_INFO, &info))
		return errno;
	for (i = 0; i < info.num_heaps; i++) {
		memset(out, 0, sizeof(*out));
		out->index = i;
		if (ioctl(dev_fd, RMEM_IOC_GET_HEAP, out))
			return errno;
		if (!strcmp(out->name, name))
			return 0;
	}
	return ENOENT;
}

static int find_peer(const char *name, uint32_t *vm)
{
	struct rmem_info info;
	uint32_t i;

	if (ioctl(dev_fd, RMEM_IOC_INFO, &info))
		return errno;
	for (i = 0; i < info.num_peers; i++) {
		struct rmem_peer_info p = { .index = i };

		if (ioctl(dev_fd, RMEM_IOC_GET_PEER, &p))
			return errno;
		if (!strcmp(p.name, name)) {
			*vm = p.vm_id;
			return 0;
		}
	}
	return ENOENT;
}

/*
 * The device's events, read on their own thread so that each is timed when
 * it arrives, whatever the main thread is busy with. @on_event runs on that
 * thread with the arrival time; the loop ends when @stop is set or the
 * device goes away (@on_event then gets NULL).
 */
struct event_reader {
	pthread_t thread;
	void (*on_event)(void *ctx, const struct rmem_event *ev, uint64_t at_ns);
	void *ctx;
	volatile bool stop;
};

static void *event_loop(void *arg)
{
	struct event_reader *r = arg;

	while (!r->stop) {
		struct pollfd pfd = { .fd = dev_fd, .events = POLLIN };
		struct rmem_event ev;
		ssize_t len;

		if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
			break;
		if (pfd.revents & (POLLHUP | POLLERR))
			break;
		if (!(pfd.revents & POLLIN))
			continue;
		len = read(dev_fd, &ev, sizeof(ev));
		if (len < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (len != (ssize_t)sizeof(ev))
			break;
		r->on_event(r->ctx, &ev, now_ns());
	}
	if (!r->stop)
		r->on_event(r->ctx, NULL, now_ns());
	return NULL;
}

/*
 * The reader runs as a real-time thread, as an interrupt handler would:
 * when an event comes it runs at once, before the frame work the main
 * thread does, so what it times is the transport, not this guest's
 * scheduler. Without the privilege for it, it runs as any thread.
 */
static int start_events(struct event_reader *r)
{
	struct sched_param prio = { .sched_priority = 10 };
	pthread_attr_t attr;
	int err;

	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
	pthread_attr_setschedparam(&attr, &prio);
	err = pthread_create(&r->thread, &attr, event_loop, r);
	pthread_attr_destroy(&attr);
	if (err == EPERM)
		err = pthread_create(&r->thread, NULL, event_loop, r);
	if (err)
		say("RMEM-DEMO-ERROR what=event-thread error=%s", errname(err));
	return err;
}

static void stop_events(struct event_reader *r)
{
	r->stop = true;
	pthread_join(r->thread, NULL);
}

static const char *event_name(uint32_t type)
{
	static const char *const names[] = {
		"NONE", "OFFERED", "RETRIEVED", "RELINQUISHED", "REVOKED", "DONATED",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "UNKNOWN";
}

/* --- decrypt ---------------------------------------------------------------------- */

enum buf_state { BUF_FREE, BUF_SHARED, BUF_RETURNED };

struct frame_buf {
	int fd;
	uint64_t buffer;	/* the device's id: owner-side events carry it */
	uint8_t *map;		/* read-write, for the buffer's life */
	enum buf_state state;
	uint32_t frame;
	uint64_t share_ns;	/* when its SHARE was sent */
	bool timed;		/* display was up when it was shared */
	bool retrieved;
};

struct decrypt {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct frame_buf bufs[NUM_BUFFERS];
	bool display_up;	/* display retrieved a frame */
	bool device_gone;
	uint64_t *latency_ns;	/* SHARE to RETRIEVED, frames shared once display was up */
	unsigned int latencies, retrieved, returned, peer_gone, other_events, dropped;
	uint64_t first_return_ns, last_return_ns;
};

static struct frame_buf *buf_by_id(struct decrypt *d, uint64_t id)
{
	int i;

	for (i = 0; i < NUM_BUFFERS; i++)
		if (d->bufs[i].buffer == id)
			return &d->bufs[i];
	return NULL;
}

static void decrypt_on_event(void *ctx, const struct rmem_event *ev, uint64_t at)
{
	struct decrypt *d = ctx;
	struct frame_buf *b;

	pthread_mutex_lock(&d->mu);
	if (!ev) {
		d->device_gone = true;
		goto out;
	}
	d->dropped += ev->dropped;
	b = buf_by_id(d, ev->buffer);
	if (ev->type == RMEM_EVENT_RETRIEVED && b && b->state == BUF_SHARED && !b->retrieved) {
		b->retrieved = true;
		d->retrieved++;
		if (b->timed)
			d->latency_ns[d->latencies++] = at - b->share_ns;
		d->display_up = true;
	} else if (ev->type == RMEM_EVENT_RELINQUISHED && b && b->state == BUF_SHARED) {
		b->state = BUF_RETURNED;
		d->returned++;
		if (ev->reason == RMEM_REASON_PEER_GONE)
			d->peer_gone++;
		if (!d->first_return_ns)
			d->first_return_ns = at;
		d->last_return_ns = at;
	} else {
		d->other_events++;
		say("RMEM-DEMO-UNEXPECTED-EVENT type=%s handle=0x%" PRIx64 " buffer=0x%" PRIx64,
		    event_name(ev->type), (uint64_t)ev->handle, (uint64_t)ev->buffer);
	}
out:
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

/* Frames per second between the first and the last frame display gave back. */
static double decrypt_fps(const struct decrypt *d)
{
	if (d->returned < 2 || d->last_return_ns <= d->first_return_ns)
		return 0;
	return (d->returned - 1) / ((double)(d->last_return_ns - d->first_return_ns) / 1e9);
}

/*
 * Reclaims every buffer display gave back, so that no offer stays open
 * longer than it is used. Main thread only; false if a RECLAIM failed.
 */
static bool reclaim_returned(struct decrypt *d)
{
	int i;

	for (i = 0; i < NUM_BUFFERS; i++) {
		struct frame_buf *b = &d->bufs[i];
		struct rmem_reclaim r = { .fd = b->fd };
		bool returned;

		pthread_mutex_lock(&d->mu);
		returned = b->state == BUF_RETURNED;
		pthread_mutex_unlock(&d->mu);
		/* The event thread leaves a returned buffer alone until it is shared again. */
		if (!returned)
			continue;
		if (ioctl(dev_fd, RMEM_IOC_RECLAIM, &r)) {
			say("RMEM-DEMO-ERROR what=reclaim frame=%u error=%s", b->frame, errname(errno));
			return false;
		}
		pthread_mutex_lock(&d->mu);
		b->state = BUF_FREE;
		pthread_mutex_unlock(&d->mu);
	}
	return true;
}

/*
 * The buffer display gave back first (triple buffering: they take turns),
 * reclaimed. Waits for display to give one back (RELINQUISHED); NULL on
 * timeout or when the device or display went away.
 */
static struct frame_buf *next_buffer(struct decrypt *d, bool *said_waiting)
{
	uint64_t deadline = deadline_from_now(), since = now_ns();
	struct frame_buf *b = NULL;
	int i;

	pthread_mutex_lock(&d->mu);
	for (;;) {
		for (i = 0; i < NUM_BUFFERS; i++)
			if (d->bufs[i].state != BUF_SHARED &&
			    (!b || d->bufs[i].frame < b->frame))
				b = &d->bufs[i];
		if (b || d->device_gone || d->peer_gone)
			break;
		if (!*said_waiting && now_ns() - since > PROGRESS_NS) {
			say("RMEM-DEMO-WAITING all %d buffers are with %s; waiting for one back",
			    NUM_BUFFERS, o.peer);
			*said_waiting = true;
		}
		if (!cond_wait_until(&d->cv, &d->mu, deadline))
			break;
	}
	pthread_mutex_unlock(&d->mu);
	if (!b) {
		say("RMEM-DEMO-ERROR what=wait-for-buffer error=%s", d->device_gone ? "ENODEV" :
		    d->peer_gone ? "peer-gone" : "ETIMEDOUT");
		return NULL;
	}
	return reclaim_returned(d) ? b : NULL;
}

static int alloc_buffers(struct decrypt *d, uint32_t heap, uint64_t align)
{
	int i;

	for (i = 0; i < NUM_BUFFERS; i++) {
		struct rmem_alloc a = { .heap = heap, .size = o.frame_size, .align = align };
		struct frame_buf *b = &d->bufs[i];

		if (ioctl(dev_fd, RMEM_IOC_ALLOC, &a)) {
			say("RMEM-DEMO-ERROR what=alloc buffer=%d size=%" PRIu64 " error=%s", i,
			    o.frame_size, errname(errno));
			return -1;
		}
		b->fd = a.fd;
		b->buffer = a.buffer;
		b->map = mmap(NULL, o.frame_size, PROT_READ | PROT_WRITE, MAP_SHARED, a.fd, 0);
		if (b->map == MAP_FAILED) {
			b->map = NULL;
			say("RMEM-DEMO-ERROR what=mmap buffer=%d error=%s", i, errname(errno));
			return -1;
		}
	}
	return 0;
}

static void free_buffers(struct decrypt *d)
{
	int i;

	for (i = 0; i < NUM_BUFFERS; i++) {
		struct frame_buf *b = &d->bufs[i];
		struct rmem_free f = { .fd = b->fd };

		if (b->fd < 0)
			continue;
		if (b->map)
			munmap(b->map, o.frame_size);
		if (ioctl(dev_fd, RMEM_IOC_FREE, &f))
			say("RMEM-DEMO-ERROR what=free buffer=%d error=%s", i, errname(errno));
		close(b->fd);
	}
}

/* Waits (up to the timeout) until display gave every shared buffer back. */
static bool wait_all_returned(struct decrypt *d)
{
	uint64_t deadline = deadline_from_now();
	bool all = false;

	pthread_mutex_lock(&d->mu);
	while (!d->device_gone && !d->peer_gone) {
		int i;

		all = true;
		for (i = 0; i < NUM_BUFFERS; i++)
			all = all && d->bufs[i].state != BUF_SHARED;
		if (all || !cond_wait_until(&d->cv, &d->mu, deadline))
			break;
	}
	pthread_mutex_unlock(&d->mu);
	return all;
}

/* For people watching: at most one line per PROGRESS_NS, and the last frame's. */
static void decrypt_progress(struct decrypt *d, uint32_t n, uint64_t *last_ns)
{
	uint64_t median, p99, *copy;
	unsigned int count, shown;
	double fps;

	if (now_ns() - *last_ns < PROGRESS_NS && n + 1 != o.frames)
		return;
	*last_ns = now_ns();
	pthread_mutex_lock(&d->mu);
	count = d->latencies;
	shown = d->returned;
	fps = decrypt_fps(d);
	copy = malloc((count ? count : 1) * sizeof(*copy));
	if (copy)
		memcpy(copy, d->latency_ns, count * sizeof(*copy));
	pthread_mutex_unlock(&d->mu);
	if (!copy)
		return;
	percentiles(copy, count, &median, &p99);
	free(copy);
	if (!count)
		say("RMEM-DEMO-PROGRESS frame %u/%u decrypted, %u shown", n + 1, o.frames, shown);
	else
		say("RMEM-DEMO-PROGRESS frame %u/%u decrypted, %u shown; %.2f frames/s;"
		    " share->%s latency median %.1f ms, p99 %.1f ms", n + 1, o.frames, shown, fps,
		    o.peer, ms(median), ms(p99));
}

static int role_decrypt(void)
{
	struct decrypt d = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct event_reader events = { .on_event = decrypt_on_event, .ctx = &d };
	struct rmem_receiver to = { .rights = RMEM_RIGHT_READ | RMEM_RIGHT_CPU_MAP };
	uint64_t source_ns = 0, decrypt_ns = 0, last_progress = 0, median, p99, align;
	uint32_t n, decrypted = 0, shared = 0;
	EVP_CIPHER_CTX *src_ctx = NULL, *dec_ctx = NULL;
	struct rmem_heap_info heap;
	struct stream_keys keys;
	bool said_waiting = false, events_started = false, ok = false;
	uint8_t *net = NULL;
	int err, i;

	cond_init_monotonic(&d.cv);
	for (i = 0; i < NUM_BUFFERS; i++)
		d.bufs[i].fd = -1;
	d.latency_ns = calloc(o.frames, sizeof(uint64_t));
	net = malloc(o.frame_size);
	src_ctx = EVP_CIPHER_CTX_new();
	dec_ctx = EVP_CIPHER_CTX_new();
	if (!d.latency_ns || !net || !src_ctx || !dec_ctx) {
		say("RMEM-DEMO-ERROR what=setup error=ENOMEM");
		goto out;
	}
	err = draw_keys(&keys);
	if (err) {
		say("RMEM-DEMO-ERROR what=getrandom error=%s", errname(err));
		goto out;
	}
	if (open_device())
		goto out;
	err = find_heap(o.heap, &heap);
	if (!err)
		err = find_peer(o.peer, &to.vm_id);
	if (err) {
		say("RMEM-DEMO-ERROR what=lookup heap=%s to=%s error=%s", o.heap, o.peer,
		    errname(err));
		goto out;
	}
	/* Frames want 2 MiB alignment (the heap's max_align says what it allows). */
	align = heap.max_align < (2ULL << 20) ? heap.max_align : 2ULL << 20;
	if (o.frame_size % align)
		align = 0;
	if (alloc_buffers(&d, heap.index, align))
		goto out;
	say("RMEM-DEMO-DECRYPT-START frames=%u frame_size=%" PRIu64 " buffers=%d heap=%s to=%s(%u)"
	    " rights=r+cpu-map cipher=aes-128-ctr key=getrandom", o.frames, o.frame_size,
	    NUM_BUFFERS, o.heap, o.peer, to.vm_id);
	if (start_events(&events))
		goto out;
	events_started = true;

	for (n = 0; n < o.frames; n++) {
		struct rmem_offer offer = { .num_receivers = 1, .receivers = (uintptr_t)&to };
		struct frame_buf *b;
		uint64_t t0 = now_ns();

		err = source_frame(src_ctx, &keys, net, n);
		if (err) {
			say("RMEM-DEMO-ERROR what=encrypt frame=%u", n);
			goto out;
		}
		source_ns += now_ns() - t0;
		b = next_buffer(&d, &said_waiting);
		if (!b)
			goto out;
		t0 = now_ns();
		err = dmabuf_sync(b->fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE);
		if (!err)
			err = aes_ctr(dec_ctx, &keys, n, net, b->map, o.frame_size);
		dmabuf_sync(b->fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE);
		if (err) {
			say("RMEM-DEMO-ERROR what=decrypt frame=%u error=%s", n, errname(err));
			goto out;
		}
		decrypt_ns += now_ns() - t0;
		decrypted++;

		/* Shared before SHARE is sent: its RETRIEVED may arrive first. */
		pthread_mutex_lock(&d.mu);
		b->state = BUF_SHARED;
		b->frame = n;
		b->retrieved = false;
		b->timed = d.display_up;
		b->share_ns = now_ns();
		pthread_mutex_unlock(&d.mu);
		offer.fd = b->fd;
		if (ioctl(dev_fd, RMEM_IOC_SHARE, &offer)) {
			err = errno;
			pthread_mutex_lock(&d.mu);
			b->state = BUF_FREE;
			pthread_mutex_unlock(&d.mu);
			say("RMEM-DEMO-ERROR what=share frame=%u error=%s", n, errname(err));
			goto out;
		}
		shared++;
		if (n == 0)
			say("RMEM-DEMO-SHARE frame=0 handle=0x%" PRIx64 " to=%s", (uint64_t)offer.handle,
			    o.peer);
		if (n == o.frames / 2)
			say("RMEM-DEMO-HALFWAY frame=%u", n);
		decrypt_progress(&d, n, &last_progress);
	}
	ok = wait_all_returned(&d);
	if (!ok)
		say("RMEM-DEMO-ERROR what=wait-for-last-frames error=%s", d.device_gone ? "ENODEV" :
		    d.peer_gone ? "peer-gone" : "ETIMEDOUT");
	ok = ok && reclaim_returned(&d);
out:
	if (events_started)
		stop_events(&events);
	free_buffers(&d);
	pthread_mutex_lock(&d.mu);
	percentiles(d.latency_ns, d.latencies, &median, &p99);
	ok = ok && decrypted == o.frames && shared == o.frames && d.returned == o.frames &&
	     !d.peer_gone && !d.other_events && !d.dropped;
	say("RMEM-DEMO-DECRYPT-DONE frames=%u decrypted=%u shared=%u retrieved=%u returned=%u"
	    " fps=%.2f latency_median_ms=%.1f latency_p99_ms=%.1f latency_frames=%u"
	    " source_ms_per_frame=%.1f decrypt_ms_per_frame=%.1f peer_gone=%u other_events=%u"
	    " dropped=%u verdict=%s", o.frames, decrypted, shared, d.retrieved, d.returned,
	    decrypt_fps(&d), ms(median), ms(p99), d.latencies,
	    decrypted ? ms(source_ns) / decrypted : 0.0, decrypted ? ms(decrypt_ns) / decrypted : 0.0,
	    d.peer_gone, d.other_events, d.dropped, ok ? "ok" : "failed");
	pthread_mutex_unlock(&d.mu);
	OPENSSL_cleanse(&keys, sizeof(keys));
	EVP_CIPHER_CTX_free(src_ctx);
	EVP_CIPHER_CTX_free(dec_ctx);
	free(net);
	free(d.latency_ns);
	return ok ? 0 : 1;
}

/* --- display ---------------------------------------------------------------------- */

#define DISPLAY_QUEUE 16	/* frames retrieved, not yet shown (decrypt has 3 out) */

struct offered_frame {
	int fd;
	uint64_t handle;
	uint64_t size;
	uint32_t rights;
};

struct display {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct offered_frame queue[DISPLAY_QUEUE];
	unsigned int head, tail;	/* queue[head % N] is the oldest */
	uint64_t on_screen;	/* the frame being shown, until it is given back */
	bool device_gone;
	unsigned int retrieve_failures, revoked, other_events, dropped;
};

/*
 * Whether display holds the frame @handle (queued or on screen). Reclaiming
 * a share tells every receiver REVOKED, also one that relinquished already
 * (docs/virtio-rmem.md): for a frame no longer held that is only news of
 * the reclaim; for one still held it would be a revocation.
 */
static bool holds(const struct display *d, uint64_t handle)
{
	unsigned int i;

	for (i = d->head; i != d->tail; i++)
		if (d->queue[i % DISPLAY_QUEUE].handle == handle)
			return true;
	return d->on_screen == handle;
}

/*
 * Retrieves each frame as it is offered (the display controller imports it
 * at once), so that decrypt's SHARE-to-RETRIEVED time is the transport's,
 * not how long the frame waited behind the one on screen.
 */
static void display_on_event(void *ctx, const struct rmem_event *ev, uint64_t at)
{
	struct display *d = ctx;
	struct rmem_retrieve r = { 0 };
	int err = 0;

	(void)at;
	if (ev && ev->type == RMEM_EVENT_OFFERED) {
		r.handle = ev->handle;
		err = ioctl(dev_fd, RMEM_IOC_RETRIEVE, &r) ? errno : 0;
		if (err)
			say("RMEM-DEMO-ERROR what=retrieve handle=0x%" PRIx64 " error=%s",
			    (uint64_t)ev->handle, errname(err));
	}
	pthread_mutex_lock(&d->mu);
	if (!ev) {
		d->device_gone = true;
	} else if (ev->type == RMEM_EVENT_REVOKED && !holds(d, ev->handle)) {
		/* the reclaim of a frame already shown */
	} else if (ev->type != RMEM_EVENT_OFFERED) {
		/* Decrypt never revokes: a frame taken before it was shown. */
		if (ev->type == RMEM_EVENT_REVOKED)
			d->revoked++;
		else
			d->other_events++;
		say("RMEM-DEMO-UNEXPECTED-EVENT type=%s handle=0x%" PRIx64, event_name(ev->type),
		    (uint64_t)ev->handle);
	} else if (err) {
		d->retrieve_failures++;
	} else if (d->tail - d->head == DISPLAY_QUEUE) {
		d->retrieve_failures++;	/* more than decrypt ever has out: not ours to keep */
		close(r.fd);
	} else {
		d->queue[d->tail++ % DISPLAY_QUEUE] = (struct offered_frame){
			.fd = r.fd, .handle = r.handle, .size = r.size, .rights = r.rights,
		};
	}
	if (ev)
		d->dropped += ev->dropped;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static bool next_offered(struct display *d, struct offered_frame *f)
{
	uint64_t deadline = deadline_from_now();
	bool got = false;

	pthread_mutex_lock(&d->mu);
	while (d->head == d->tail && !d->device_gone &&
	       cond_wait_until(&d->cv, &d->mu, deadline))
		;
	if (d->head != d->tail) {
		*f = d->queue[d->head++ % DISPLAY_QUEUE];
		d->on_screen = f->handle;
		got = true;
	}
	pthread_mutex_unlock(&d->mu);
	return got;
}

struct write_tally {
	unsigned int attempts, refused;
};

/*
 * Every way user space has to write the frame: a writable mapping, making
 * the read-only mapping writable, and a store through it (which, were it
 * allowed, would write back the word that is there, leaving the frame
 * intact). Each must be refused.
 */
static void try_write(int fd, uint8_t *map, uint64_t size, uint32_t n, struct write_tally *t)
{
	volatile uint64_t *word = (volatile uint64_t *)(map + sizeof(struct frame_header));
	const char *rw, *prot, *store = "sigsegv";
	uint64_t value = 0;
	void *p;
	int sig;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	rw = p == MAP_FAILED ? errname(errno) : "mapped";
	if (p != MAP_FAILED)
		munmap(p, size);
	prot = mprotect(map, size, PROT_READ | PROT_WRITE) ? errname(errno) : "allowed";
	if (!strcmp(prot, "allowed"))
		mprotect(map, size, PROT_READ);
	fault_probe(word, sizeof(*word), false, &value);
	sig = fault_probe(word, sizeof(*word), true, &value);
	if (!sig)
		store = "stored";
	else if (sig == SIGBUS)
		store = "sigbus";
	t->attempts += 3;
	t->refused += (p == MAP_FAILED) + !!strcmp(prot, "allowed") + !!sig;
	if (p != MAP_FAILED || !strcmp(prot, "allowed") || !sig)
		say("RMEM-DEMO-WRITABLE frame=%u mmap_rw=%s mprotect=%s store=%s", n, rw, prot, store);
}

static int role_display(void)
{
	struct display d = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct event_reader events = { .on_event = display_on_event, .ctx = &d };
	unsigned int shown = 0, verified = 0, counts[4] = { 0 }, writable_grants = 0, errors = 0;
	uint64_t verify_ns = 0, first_ns = 0, last_ns = 0;
	struct write_tally writes = { 0 };
	uint32_t n;
	bool ok;

	cond_init_monotonic(&d.cv);
	if (open_device() || start_events(&events))
		return 1;
	say("RMEM-DEMO-DISPLAY-START frames=%u write_every=%u", o.frames, o.write_every);
	for (n = 0; n < o.frames; n++) {
		struct rmem_relinquish rel = { 0 };
		struct offered_frame f;
		enum verdict v;
		uint8_t *map;
		uint64_t t0;

		if (!next_offered(&d, &f)) {
			say("RMEM-DEMO-ERROR what=wait-for-frame frame=%u error=%s", n,
			    d.device_gone ? "ENODEV" : "ETIMEDOUT");
			errors++;
			break;
		}
		if ((f.rights & RMEM_RIGHT_WRITE) || !(f.rights & RMEM_RIGHT_READ) ||
		    !(f.rights & RMEM_RIGHT_CPU_MAP)) {
			say("RMEM-DEMO-BAD-GRANT frame=%u rights=0x%x", n, f.rights);
			writable_grants += !!(f.rights & RMEM_RIGHT_WRITE);
		}
		map = f.size == o.frame_size ?
		      mmap(NULL, f.size, PROT_READ, MAP_SHARED, f.fd, 0) : MAP_FAILED;
		if (map == MAP_FAILED) {
			say("RMEM-DEMO-ERROR what=map frame=%u size=%" PRIu64 " error=%s", n, f.size,
			    f.size == o.frame_size ? errname(errno) : "wrong-size");
			errors++;
		} else {
			t0 = now_ns();
			if (dmabuf_sync(f.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ))
				errors++;
			v = check_frame(map, f.size, n, o.frames);
			dmabuf_sync(f.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
			verify_ns += now_ns() - t0;
			counts[v]++;
			verified += v == FRAME_OK;
			if (v != FRAME_OK)
				say("RMEM-DEMO-BAD-FRAME frame=%u handle=0x%" PRIx64 " why=%s", n,
				    f.handle, verdict_name(v));
			shown++;	/* scanned out */
			last_ns = now_ns();
			if (!first_ns)
				first_ns = last_ns;
			if (n % o.write_every == 0)
				try_write(f.fd, map, f.size, n, &writes);
			munmap(map, f.size);
		}
		/* Before RELINQUISH: the reclaim's REVOKED may come before its answer. */
		pthread_mutex_lock(&d.mu);
		d.on_screen = 0;
		pthread_mutex_unlock(&d.mu);
		rel.fd = f.fd;
		if (ioctl(dev_fd, RMEM_IOC_RELINQUISH, &rel)) {
			say("RMEM-DEMO-ERROR what=relinquish frame=%u error=%s", n, errname(errno));
			errors++;
		}
		close(f.fd);
		if ((n + 1) % 10 == 0 && n + 1 != o.frames)
			say("RMEM-DEMO-SHOWN %u/%u verified=%u writes_refused=%u/%u", n + 1, o.frames,
			    verified, writes.refused, writes.attempts);
	}
	stop_events(&events);
	ok = shown == o.frames && verified == o.frames && writes.refused == writes.attempts &&
	     !writable_grants && !errors && !d.retrieve_failures && !d.revoked && !d.other_events &&
	     !d.dropped;
	say("RMEM-DEMO-DISPLAY-DONE frames=%u shown=%u verified=%u checksum_failures=%u"
	    " header_failures=%u out_of_order=%u write_attempts=%u write_refused=%u"
	    " writable_grants=%u fps=%.2f verify_ms_per_frame=%.1f retrieve_failures=%u"
	    " revoked=%u other_events=%u dropped=%u errors=%u verdict=%s", o.frames, shown, verified,
	    counts[FRAME_BAD_CHECKSUM], counts[FRAME_BAD_HEADER], counts[FRAME_WRONG_NUMBER],
	    writes.attempts, writes.refused, writable_grants,
	    shown > 1 && last_ns > first_ns ? (shown - 1) / ((double)(last_ns - first_ns) / 1e9) : 0.0,
	    shown ? ms(verify_ns) / shown : 0.0, d.retrieve_failures, d.revoked, d.other_events,
	    d.dropped, errors, ok ? "ok" : "failed");
	return ok ? 0 : 1;
}

/* --- infotainment ------------------------------------------------------------------- */

enum attempt_kind { KIND_HANDLE, KIND_HEAP, KIND_QUOTA, KIND_WINDOW, NUM_KINDS };

static const char *const kind_names[NUM_KINDS] = {
	"leaked-handle", "secure-video", "quota", "window",
};

struct attempts {
	unsigned int made, denied[NUM_KINDS], not_denied, unexpected, window_faults;
};

/*
 * How one attempt ended: denied as it should be; done (an isolation
 * failure); or failed some other way (it did not test what it meant to).
 */
enum result { DENIED, DONE, OTHER };

static void outcome(struct attempts *a, enum attempt_kind kind, const char *what,
		    enum result r, const char *how)
{
	static const char *const labels[] = { "DENIED", "NOT-DENIED", "UNEXPECTED" };

	a->made++;
	if (r == DENIED)
		a->denied[kind]++;
	else if (r == DONE)
		a->not_denied++;
	else
		a->unexpected++;
	say("RMEM-DEMO-%s kind=%s what=\"%s\" result=%s", labels[r], kind_names[kind], what, how);
}

/* A device request's result: denied iff it failed with @want. */
static enum result request_result(int err, int want)
{
	return err == want ? DENIED : err ? OTHER : DONE;
}

static void try_leaked_handle(struct attempts *a)
{
	struct rmem_retrieve r = { .handle = o.handle };
	char what[96];
	int err;

	snprintf(what, sizeof(what), "RETRIEVE 0x%" PRIx64 " (a frame offered to %s)", o.handle,
		 o.peer);
	err = ioctl(dev_fd, RMEM_IOC_RETRIEVE, &r) ? errno : 0;
	outcome(a, KIND_HANDLE, what, request_result(err, ENOENT), errname(err));
	if (!err) {
		struct rmem_relinquish q = { .fd = r.fd };

		ioctl(dev_fd, RMEM_IOC_RELINQUISH, &q);
		close(r.fd);
	}
}

/* ALLOC of @size from @heap, expected to fail with @want; the buffer if not. */
static int try_alloc(struct attempts *a, enum attempt_kind kind, const char *heap_name,
		     uint64_t size, int want, const char *why)
{
	struct rmem_heap_info heap;
	struct rmem_alloc al = { .size = size };
	char what[128];
	int err;

	snprintf(what, sizeof(what), "ALLOC %" PRIu64 " KiB from %s (%s)", size >> 10, heap_name,
		 why);
	err = find_heap(heap_name, &heap);
	if (err) {
		/* Not even shown to us: as good a refusal as any, but say so. */
		outcome(a, kind, what, err == ENOENT ? DENIED : OTHER,
			err == ENOENT ? "heap-not-shown" : errname(err));
		return -1;
	}
	al.heap = heap.index;
	err = ioctl(dev_fd, RMEM_IOC_ALLOC, &al) ? errno : 0;
	outcome(a, kind, what, request_result(err, want), errname(err));
	return err ? -1 : al.fd;
}

static void free_fd(int fd)
{
	struct rmem_free f = { .fd = fd };

	if (fd < 0)
		return;
	ioctl(dev_fd, RMEM_IOC_FREE, &f);
	close(fd);
}

/*
 * The device's shared memory region in guest physical memory: the range
 * the driver reserved under the virtio device's name in /proc/iomem, of the
 * size the device reports. 0 if not found.
 */
static uint64_t window_base(uint64_t size)
{
	unsigned long long start, end;
	char line[256], name[64];
	uint64_t base = 0;
	FILE *f = fopen("/proc/iomem", "r");

	if (!f)
		return 0;
	while (!base && fgets(line, sizeof(line), f))
		if (sscanf(line, " %llx-%llx : %63s", &start, &end, name) == 3 &&
		    !strncmp(name, "virtio", 6) && end >= start && end - start + 1 == size)
			base = start;
	fclose(f);
	return base;
}

/*
 * Loads and stores where nothing is granted in its own shared memory
 * window, through /dev/mem (the kernel command line needs iomem=relaxed:
 * the driver holds the region). rmem-vmm finds no piece mapped there and
 * answers each with an external abort: SIGBUS here, a violation counted
 * there (and its exit status 5).
 */
static void try_window(struct attempts *a, uint64_t base, uint64_t size)
{
	const struct {
		uint64_t offset;
		bool write;
		const char *where;
	} tries[] = {
		{ 0, false, "the first byte" },
		{ size - 8, false, "the last word" },
		{ 0, true, "the first byte" },
	};
	long page = sysconf(_SC_PAGESIZE);
	unsigned int i;
	int fd;

	fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		uint64_t at = base + tries[i].offset, value = 0x5a5a5a5a5a5a5a5aULL;
		uint64_t page_at = at & ~(uint64_t)(page - 1);
		char what[128];
		uint8_t *map = MAP_FAILED;
		int sig;

		snprintf(what, sizeof(what), "%s of 0x%" PRIx64 " (%s of its shared memory window,"
			 " nothing granted)", tries[i].write ? "store" : "load", at, tries[i].where);
		if (fd >= 0)
			map = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
				   (off_t)page_at);
		if (map == MAP_FAILED) {
			outcome(a, KIND_WINDOW, what, OTHER,
				fd < 0 ? "cannot-open-dev-mem" : "cannot-map-dev-mem");
			continue;
		}
		sig = fault_probe(map + (at - page_at), sizeof(value), tries[i].write, &value);
		a->window_faults += sig == SIGBUS;
		outcome(a, KIND_WINDOW, what, sig == SIGBUS ? DENIED : sig ? OTHER : DONE,
			sig == SIGBUS ? "SIGBUS" : sig ? "SIGSEGV" : "completed");
		munmap(map, (size_t)page);
	}
	if (fd >= 0)
		close(fd);
}

/* Events this VM was sent: none may offer it anything. */
static unsigned int drain_offers(void)
{
	struct rmem_event ev;
	unsigned int offers = 0;
	int flags = fcntl(dev_fd, F_GETFL);

	fcntl(dev_fd, F_SETFL, flags | O_NONBLOCK);
	while (read(dev_fd, &ev, sizeof(ev)) == (ssize_t)sizeof(ev)) {
		say("RMEM-DEMO-EVENT type=%s handle=0x%" PRIx64, event_name(ev.type),
		    (uint64_t)ev.handle);
		offers += ev.type == RMEM_EVENT_OFFERED;
	}
	fcntl(dev_fd, F_SETFL, flags);
	return offers;
}

static int role_infotainment(void)
{
	struct attempts a = { 0 };
	struct rmem_heap_info ui;
	struct rmem_info info;
	unsigned int offers, denied = 0, k;
	uint64_t base;
	int fd;

	if (!o.handle) {
		fprintf(stderr, "rmem-demo: infotainment needs --handle (the leaked frame handle)\n");
		return 2;
	}
	if (open_device())
		return 1;
	if (ioctl(dev_fd, RMEM_IOC_INFO, &info)) {
		say("RMEM-DEMO-ERROR what=info error=%s", errname(errno));
		return 1;
	}
	say("RMEM-DEMO-INFOTAINMENT-START vm=%u leaked_handle=0x%" PRIx64, info.vm_id, o.handle);
	/* First, while the frame is still offered (L1 holds display back until now). */
	try_leaked_handle(&a);
	try_alloc(&a, KIND_HEAP, o.heap, o.frame_size, EACCES, "not this VM's heap");
	/* Its own heap, filled to its quota (allowed), then one page more. */
	fd = -1;
	if (!find_heap(o.ui_heap, &ui) && ui.quota_bytes != RMEM_UNLIMITED && ui.quota_bytes) {
		struct rmem_alloc al = { .heap = ui.index, .size = ui.quota_bytes };

		if (ioctl(dev_fd, RMEM_IOC_ALLOC, &al))
			say("RMEM-DEMO-ERROR what=alloc-quota heap=%s size=%" PRIu64 " error=%s",
			    o.ui_heap, (uint64_t)ui.quota_bytes, errname(errno));
		else
			fd = al.fd;
		say("RMEM-DEMO-ALLOWED what=\"ALLOC %" PRIu64 " KiB from %s (its whole quota)\""
		    " result=%s", (uint64_t)ui.quota_bytes >> 10, o.ui_heap, fd < 0 ? "failed" : "ok");
	}
	free_fd(try_alloc(&a, KIND_QUOTA, o.ui_heap, 4096, ENOSPC, "one page past its quota"));
	free_fd(fd);
	/* Nothing is granted in its window now: it holds no buffer. */
	base = info.shm_size ? window_base(info.shm_size) : 0;
	if (base) {
		try_window(&a, base, info.shm_size);
	} else {
		outcome(&a, KIND_WINDOW, "find its shared memory window in /proc/iomem", OTHER,
			"not-found");
	}
	offers = drain_offers();
	for (k = 0; k < NUM_KINDS; k++)
		denied += a.denied[k];
	say("RMEM-DEMO-INFOTAINMENT-DONE attempts=%u denied=%u not_denied=%u unexpected=%u"
	    " leaked-handle=%u secure-video=%u quota=%u window=%u window_faults=%u offers_seen=%u"
	    " verdict=%s", a.made, denied, a.not_denied, a.unexpected, a.denied[KIND_HANDLE],
	    a.denied[KIND_HEAP], a.denied[KIND_QUOTA], a.denied[KIND_WINDOW], a.window_faults,
	    offers, denied == a.made && !offers ? "ok" : "failed");
	return denied == a.made && !offers ? 0 : 1;
}

/* --- selftest ---------------------------------------------------------------------- */

static int role_selftest(void)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t *net = malloc(o.frame_size), *frame = malloc(o.frame_size);
	struct stream_keys keys, other;
	enum verdict tampered = FRAME_OK, wrong_key = FRAME_OK, misplaced = FRAME_OK;
	unsigned int good = 0;
	uint32_t n;
	int err;

	if (!ctx || !net || !frame || draw_keys(&keys) || draw_keys(&other)) {
		say("RMEM-DEMO-ERROR what=selftest-setup");
		return 1;
	}
	for (n = 0; n < o.frames; n++) {
		err = source_frame(ctx, &keys, net, n);
		if (!err)
			err = aes_ctr(ctx, &keys, n, net, frame, o.frame_size);
		if (!err && memcmp(net, frame, sizeof(struct frame_header)) &&
		    check_frame(frame, o.frame_size, n, o.frames) == FRAME_OK)
			good++;
	}
	/* The last frame: one flipped payload bit, a wrong key, a wrong position. */
	frame[o.frame_size - 1] ^= 1;
	tampered = check_frame(frame, o.frame_size, o.frames - 1, o.frames);
	frame[o.frame_size - 1] ^= 1;
	misplaced = o.frames > 1 ? check_frame(frame, o.frame_size, 0, o.frames) :
		    FRAME_WRONG_NUMBER;
	if (!aes_ctr(ctx, &other, o.frames - 1, net, frame, o.frame_size))
		wrong_key = check_frame(frame, o.frame_size, o.frames - 1, o.frames);
	say("RMEM-DEMO-SELFTEST frames=%u verified=%u tampered=%s wrong_key=%s misplaced=%s",
	    o.frames, good, verdict_name(tampered), verdict_name(wrong_key), verdict_name(misplaced));
	EVP_CIPHER_CTX_free(ctx);
	free(net);
	free(frame);
	return good == o.frames && tampered == FRAME_BAD_CHECKSUM &&
	       wrong_key == FRAME_BAD_HEADER && misplaced == FRAME_WRONG_NUMBER ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(void);
	} roles[] = {
		{ "decrypt", role_decrypt },
		{ "display", role_display },
		{ "infotainment", role_infotainment },
		{ "selftest", role_selftest },
	};
	size_t i;

	if (parse_args(argc, argv))
		return 2;
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (!strcmp(o.role, roles[i].name))
			return roles[i].run();
	fprintf(stderr, "rmem-demo: unknown role '%s' (decrypt, display, infotainment, selftest)\n",
		o.role);
	return 2;
}
