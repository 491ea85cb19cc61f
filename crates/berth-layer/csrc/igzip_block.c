/*
 * One block of Berth's pigz-style gzip stream, deflated by ISA-L's igzip.
 *
 * ISA-L's stream structure is large and its layout is private to the header, so the Rust side calls this one
 * function instead of driving `struct isal_zstream` itself.
 */
#include <stdint.h>
#include <stdlib.h>

#include <isa-l/igzip_lib.h>

/* Returned when `out_cap` was too small: the caller retries with more room. */
#define BERTH_IGZIP_NEED_ROOM 1
/* Returned for a level igzip does not have, or when memory ran out. */
#define BERTH_IGZIP_BAD_LEVEL (-1000)
#define BERTH_IGZIP_NO_MEMORY (-1001)

/*
 * Deflates in[0..in_len) as raw deflate at igzip `level` (1..3), with dict[0..dict_len) (at most 32 KiB) as the
 * history. The output ends on a sync flush (an empty stored block, byte-aligned), or on the final block when `last`
 * is non-zero, so such blocks concatenate into one deflate stream.
 *
 * Every call starts from a freshly zeroed state and level buffer, so the bytes depend only on the arguments.
 * Returns 0 with *out_len set, BERTH_IGZIP_NEED_ROOM, or a negative error.
 */
int berth_igzip_block(uint32_t level, const uint8_t *dict, uint32_t dict_len, const uint8_t *in, uint32_t in_len,
                      int last, uint8_t *out, uint32_t out_cap, uint32_t *out_len)
{
	uint32_t buf_size;
	switch (level) {
	case 1: buf_size = ISAL_DEF_LVL1_DEFAULT; break;
	case 2: buf_size = ISAL_DEF_LVL2_DEFAULT; break;
	case 3: buf_size = ISAL_DEF_LVL3_DEFAULT; break;
	default: return BERTH_IGZIP_BAD_LEVEL;
	}
	struct isal_zstream *s = calloc(1, sizeof *s);
	uint8_t *level_buf = calloc(1, buf_size);
	int rc;
	if (s == NULL || level_buf == NULL) {
		rc = BERTH_IGZIP_NO_MEMORY;
		goto done;
	}
	isal_deflate_init(s);
	s->level = level;
	s->level_buf = level_buf;
	s->level_buf_size = buf_size;
	s->gzip_flag = IGZIP_DEFLATE;
	if (dict_len > 0) {
		rc = isal_deflate_set_dict(s, (uint8_t *)dict, dict_len);
		if (rc != COMP_OK)
			goto done;
	}
	s->next_in = (uint8_t *)in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_cap;
	s->end_of_stream = last ? 1 : 0;
	s->flush = last ? NO_FLUSH : SYNC_FLUSH;
	rc = isal_deflate(s);
	if (rc != COMP_OK)
		goto done;
	/* Done once all input is in and the stream reached its end (last) or the start of a new block (flushed). */
	int finished = s->avail_in == 0 && s->avail_out > 0 &&
		       s->internal_state.state == (last ? ZSTATE_END : ZSTATE_NEW_HDR);
	if (!finished) {
		rc = BERTH_IGZIP_NEED_ROOM;
		goto done;
	}
	*out_len = s->total_out;
	rc = 0;
done:
	free(level_buf);
	free(s);
	return rc;
}
