#include "binaura_link.h"

#include <string.h>

uint32_t ba_crc32c(const uint8_t *data, size_t len) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        c ^= data[i];
        for (int k = 0; k < 8; k++) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

size_t ba_frame_build(const ba_header_t *h, const uint8_t *payload, size_t payload_len, uint8_t *out) {
    if (payload_len > BA_MAX_PAYLOAD) return 0;
    out[0] = BA_MAGIC0;
    out[1] = BA_MAGIC1;
    out[2] = BA_VERSION;
    out[3] = h->type;
    out[4] = h->flags;
    out[5] = h->channels;
    out[6] = h->sample_format;
    out[7] = 0; /* reserved */
    put_u32(out + 8, h->seq);
    put_u64(out + 12, h->timestamp_us);
    put_u32(out + 20, h->sample_rate_hz);
    put_u16(out + 24, (uint16_t)payload_len);
    if (payload_len) memcpy(out + BA_HEADER_SIZE, payload, payload_len);
    size_t n = BA_HEADER_SIZE + payload_len;
    put_u32(out + n, ba_crc32c(out, n));
    return n + BA_CRC_SIZE;
}

void ba_orientation_payload(const float q[4], uint8_t out[BA_ORIENTATION_PAYLOAD]) {
    for (int i = 0; i < 4; i++) {
        uint32_t bits;
        memcpy(&bits, &q[i], sizeof bits); /* the float's IEEE-754 bits, whatever the byte order */
        put_u32(out + 4 * i, bits);
    }
}

size_t ba_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

size_t ba_frame_build_stream(const ba_header_t *h, const uint8_t *payload, size_t payload_len,
                             uint8_t *scratch, uint8_t *out) {
    size_t n = ba_frame_build(h, payload, payload_len, scratch);
    if (n == 0) return 0;
    size_t m = ba_cobs_encode(scratch, n, out);
    out[m] = 0x00;
    return m + 1;
}
