/* Test driver: read test vectors on stdin, one per line, either
 *   type flags channels format seq timestamp_us rate payload_hex|-
 * or, for an ORIENTATION frame whose payload ba_orientation_payload packs,
 *   q flags seq timestamp_us rate w x y z
 * and print the COBS stream encoding of each frame as hex, one per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binaura_link.h"

static uint8_t payload[BA_MAX_PAYLOAD], scratch[BA_MAX_FRAME], out[BA_MAX_ENCODED];
static char hex[2 * BA_MAX_PAYLOAD + 2];
static char line[2 * BA_MAX_PAYLOAD + 256];

static int parse_orientation(const char *s, ba_header_t *h, size_t *plen) {
    unsigned flags;
    unsigned long seq, rate;
    unsigned long long ts;
    float q[4];
    if (sscanf(s, "q %u %lu %llu %lu %f %f %f %f", &flags, &seq, &ts, &rate, &q[0], &q[1], &q[2], &q[3]) != 8)
        return 0;
    ba_header_t o = {BA_ORIENTATION, (uint8_t)flags, 0, 0, (uint32_t)seq, (uint64_t)ts, (uint32_t)rate};
    *h = o;
    ba_orientation_payload(q, payload);
    *plen = BA_ORIENTATION_PAYLOAD;
    return 1;
}

static int parse_generic(const char *s, ba_header_t *h, size_t *plen) {
    unsigned type, flags, channels, format;
    unsigned long seq, rate;
    unsigned long long ts;
    if (sscanf(s, "%u %u %u %u %lu %llu %lu %s", &type, &flags, &channels, &format, &seq, &ts, &rate, hex) != 8)
        return 0;
    *plen = 0;
    if (strcmp(hex, "-") != 0) {
        *plen = strlen(hex) / 2;
        for (size_t i = 0; i < *plen; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            payload[i] = (uint8_t)v;
        }
    }
    ba_header_t g = {(uint8_t)type, (uint8_t)flags, (uint8_t)channels, (uint8_t)format,
                     (uint32_t)seq, (uint64_t)ts, (uint32_t)rate};
    *h = g;
    return 1;
}

int main(void) {
    while (fgets(line, sizeof line, stdin) != NULL) {
        ba_header_t h;
        size_t plen;
        if (strspn(line, " \t\r\n") == strlen(line)) continue; /* blank line */
        int ok = line[0] == 'q' ? parse_orientation(line, &h, &plen) : parse_generic(line, &h, &plen);
        if (!ok) break;
        size_t n = ba_frame_build_stream(&h, payload, plen, scratch, out);
        for (size_t i = 0; i < n; i++) printf("%02x", out[i]);
        printf("\n");
    }
    return 0;
}
