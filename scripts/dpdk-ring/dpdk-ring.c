/*
 * dpdk-ring: Debian's DPDK 22.11 VMBus ring (librte_bus_vmbus) driven the
 * way `vmbus bench ring` drives govmbus's ring, so that the two can be
 * compared in one run on one machine: one writer thread and one reader
 * thread on one ring in plain memory, both busy-polling, the reader
 * copying every payload out. Prints the same JSON object as
 * `vmbus bench ring --json` (packets, payload, seconds, packets_per_sec,
 * bytes_per_sec, signals, checksum).
 *
 * The library's exported calls are used as they are: rte_vmbus_chan_send
 * to write an in-band packet and rte_vmbus_chan_recv to copy one out.
 * They take a struct vmbus_channel, which the library keeps private and
 * builds only for a device probed through uio. There is no exported way
 * to make one over plain memory, so this program lays out the two fields
 * those calls use itself (see struct chan below); the rest of the
 * structure is zero, and the paths that would read it (signalling the
 * host) are never taken: the sender asks to be told of a signal instead
 * of having it sent, and the receiver's pending-send check ends at a
 * pending send size of 0, which no one sets here.
 *
 * --one-thread instead writes packets until the ring is full and then
 * reads them all back, on one thread, until count packets went through:
 * the loop of govmbus's BenchmarkWriteRead, for counting the instructions
 * each packet costs (scripts/ring-instructions.sh runs it under callgrind,
 * collecting only inside one_thread).
 *
 * Usage: dpdk-ring [--payload N] [--count N] [--ring-size BYTES] [--one-thread] [--json]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <rte_bus_vmbus.h>
#include <rte_vmbus_reg.h>

/*
 * The part of DPDK 22.11's private struct vmbus_channel that the send and
 * receive calls read: a receive and a transmit ring, each a pointer to the
 * ring's control page, the data size and the transmit side's private write
 * index. The offsets are the library's (its rte_vmbus_chan_rx_empty loads
 * the receive ring's pointer from 0x20, rte_vmbus_chan_send hands 0x30 to
 * its ring writer); main checks them against the library at start.
 */
struct ring_ref {
	struct vmbus_bufring *vbr;
	uint32_t dsize;
	uint32_t windex;
};

struct chan {
	unsigned char unused0[0x20]; /* channel lists and device */
	struct ring_ref rx;          /* 0x20 */
	struct ring_ref tx;          /* 0x30 */
	unsigned char unused1[0x40]; /* ids, monitor page: zero */
};

_Static_assert(offsetof(struct chan, rx) == 0x20, "receive ring at 0x20");
_Static_assert(offsetof(struct chan, tx) == 0x30, "transmit ring at 0x30");

struct run {
	struct chan *wr, *rd;
	int payload;
	uint64_t count;
	uint64_t checksum;
	int err;
};

static void *writer(void *arg)
{
	struct run *r = arg;
	unsigned char *buf = calloc(1, r->payload > 0 ? r->payload : 1);
	if (buf == NULL) {
		r->err = ENOMEM;
		return NULL;
	}
	for (uint64_t i = 0; i < r->count; i++) {
		if (r->payload >= 8)
			memcpy(buf, &i, 8);
		for (;;) {
			bool sig = false;
			int rc = rte_vmbus_chan_send((struct vmbus_channel *)r->wr, VMBUS_CHANPKT_TYPE_INBAND,
						     buf, r->payload, i, VMBUS_CHANPKT_FLAG_NONE, &sig);
			if (rc == 0)
				break;
			if (rc != -EAGAIN) {
				r->err = -rc;
				free(buf);
				return NULL;
			}
		}
	}
	free(buf);
	return NULL;
}

static uint64_t reader(struct run *r)
{
	unsigned char *dst = calloc(1, r->payload > 0 ? r->payload : 1);
	uint64_t sum = 0;
	if (dst == NULL)
		return 0;
	for (uint64_t got = 0; got < r->count;) {
		uint32_t len = r->payload;
		uint64_t id;
		int rc = rte_vmbus_chan_recv((struct vmbus_channel *)r->rd, dst, &len, &id);
		if (rc == -EAGAIN)
			continue;
		if (rc != 0) {
			fprintf(stderr, "dpdk-ring: receive: %s\n", strerror(-rc));
			exit(1);
		}
		/* The payload is padded to 8 bytes on the wire. */
		if (len != (uint32_t)((r->payload + 7) & ~7) || id != got) {
			fprintf(stderr, "dpdk-ring: packet %" PRIu64 ": length %u, id %" PRIu64 "\n", got, len, id);
			exit(1);
		}
		if (r->payload >= 8) {
			uint64_t seq;
			memcpy(&seq, dst, 8);
			sum += seq;
		}
		got++;
	}
	free(dst);
	return sum;
}

/* one_thread is the single-threaded loop of --one-thread; not inlined, so
 * that a profiler can collect inside it alone. */
__attribute__((noinline)) static uint64_t one_thread(struct run *r)
{
	unsigned char *buf = calloc(1, r->payload > 0 ? r->payload : 1);
	unsigned char *dst = calloc(1, r->payload > 0 ? r->payload : 1);
	uint64_t sum = 0, sent = 0, got = 0;
	if (buf == NULL || dst == NULL)
		exit(1);
	while (got < r->count) {
		while (sent < r->count) {
			bool sig = false;
			if (r->payload >= 8)
				memcpy(buf, &sent, 8);
			if (rte_vmbus_chan_send((struct vmbus_channel *)r->wr, VMBUS_CHANPKT_TYPE_INBAND, buf,
						r->payload, sent, VMBUS_CHANPKT_FLAG_NONE, &sig) != 0)
				break;
			sent++;
		}
		for (;;) {
			uint32_t len = r->payload;
			uint64_t id;
			if (rte_vmbus_chan_recv((struct vmbus_channel *)r->rd, dst, &len, &id) != 0)
				break;
			if (r->payload >= 8) {
				uint64_t seq;
				memcpy(&seq, dst, 8);
				sum += seq;
			}
			got++;
		}
	}
	free(buf);
	free(dst);
	return sum;
}

static long arg(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "dpdk-ring: %s needs a value\n", argv[*i]);
		exit(2);
	}
	char *end;
	long v = strtol(argv[++*i], &end, 10);
	if (*end != 0 || v < 0) {
		fprintf(stderr, "dpdk-ring: bad value %s\n", argv[*i]);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	long payload = 64, count = 1000000, ring_size = 262144;
	bool json = false, one = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--payload") == 0)
			payload = arg(argc, argv, &i);
		else if (strcmp(argv[i], "--count") == 0)
			count = arg(argc, argv, &i);
		else if (strcmp(argv[i], "--ring-size") == 0)
			ring_size = arg(argc, argv, &i);
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--one-thread") == 0)
			one = true;
		else {
			fprintf(stderr, "usage: dpdk-ring [--payload N] [--count N] [--ring-size BYTES] [--one-thread] [--json]\n");
			return 2;
		}
	}
	/* The same limits as `vmbus bench ring`: a packet (16-byte
	 * descriptor, padded payload, 8-byte footer) must fit. */
	if (count <= 0 || ring_size < 4096 || ring_size % 4096 != 0 ||
	    16 + ((payload + 7) & ~7L) + 8 > ring_size - 8) {
		fprintf(stderr, "dpdk-ring: bad sizes\n");
		return 2;
	}

	/* A control page, then the data area: the library finds the data one
	 * page after the control page, as every VMBus ring lays it out. */
	size_t len = 4096 + ring_size;
	void *region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		perror("dpdk-ring: mmap");
		return 1;
	}
	struct vmbus_bufring *vbr = region;
	vbr->feature_bits.value = 1; /* pending send size in use, as govmbus's bench formats it */

	struct chan *wr = aligned_alloc(64, sizeof(struct chan));
	struct chan *rd = aligned_alloc(64, sizeof(struct chan));
	if (wr == NULL || rd == NULL)
		return 1;
	memset(wr, 0, sizeof(*wr));
	memset(rd, 0, sizeof(*rd));
	wr->tx = (struct ring_ref){.vbr = vbr, .dsize = ring_size, .windex = 0};
	rd->rx = (struct ring_ref){.vbr = vbr, .dsize = ring_size, .windex = 0};

	/* Check the layout against the library before trusting it: the
	 * receive side sees the ring empty, then one packet sent through the
	 * transmit side, which it reads back whole. */
	if (!rte_vmbus_chan_rx_empty((struct vmbus_channel *)rd)) {
		fprintf(stderr, "dpdk-ring: the library does not see the receive ring where it was put\n");
		return 1;
	}
	uint64_t probe = 0x0123456789abcdefULL, back = 0, id = 0;
	bool sig = false;
	uint32_t blen = sizeof(back);
	if (rte_vmbus_chan_send((struct vmbus_channel *)wr, VMBUS_CHANPKT_TYPE_INBAND, &probe, sizeof(probe), 7, 0, &sig) != 0 ||
	    rte_vmbus_chan_rx_empty((struct vmbus_channel *)rd) ||
	    rte_vmbus_chan_recv((struct vmbus_channel *)rd, &back, &blen, &id) != 0 ||
	    back != probe || id != 7 || blen != sizeof(back) || vbr->windex != vbr->rindex || vbr->windex != 32) {
		fprintf(stderr, "dpdk-ring: the library's channel layout is not the one this program assumes\n");
		return 1;
	}
	/* Start the measured run from an empty ring at index 0, as govmbus's. */
	vbr->windex = vbr->rindex = 0;
	wr->tx.windex = 0;

	struct run r = {.wr = wr, .rd = rd, .payload = (int)payload, .count = (uint64_t)count};
	struct timespec t0, t1;
	pthread_t th;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (one) {
		r.checksum = one_thread(&r);
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} else {
		if (pthread_create(&th, NULL, writer, &r) != 0) {
			perror("dpdk-ring: pthread_create");
			return 1;
		}
		r.checksum = reader(&r);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_join(th, NULL);
	}
	if (r.err != 0) {
		fprintf(stderr, "dpdk-ring: send: %s\n", strerror(r.err));
		return 1;
	}
	uint64_t want = payload >= 8 ? (uint64_t)count * (uint64_t)(count - 1) / 2 : 0;
	if (r.checksum != want) {
		fprintf(stderr, "dpdk-ring: reader saw sequence-number sum %" PRIu64 ", want %" PRIu64 "\n", r.checksum, want);
		return 1;
	}
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	double pps = (double)count / secs;
	if (json)
		printf("{\"packets\":%ld,\"payload\":%ld,\"seconds\":%.9f,\"packets_per_sec\":%.3f,"
		       "\"bytes_per_sec\":%.3f,\"signals\":0,\"checksum\":%" PRIu64 "}\n",
		       count, payload, secs, pps, pps * (double)payload, r.checksum);
	else
		printf("dpdk ring bench: %ld packets of %ld bytes, %ld-byte ring, busy-poll, copy reads\n"
		       "  seconds      %.3f\n  packets/s    %.2f M\n  bytes/s      %.2f GB/s\n",
		       count, payload, ring_size, secs, pps / 1e6, pps * (double)payload / 1e9);
	munmap(region, len);
	free(wr);
	free(rd);
	return 0;
}
