/* Test driver: read test vectors on stdin, one per line:
 *   type flags channels format seq timestamp_us rate payload_hex|-
 * and print the COBS stream encoding of each frame as hex, one per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binaura_link.h"

static uint8_t payload[BA_MAX_PAYLOAD], scratch[BA_MAX_FRAME], out[BA_MAX_ENCODED];
static char hex[2 * BA_MAX_PAYLOAD + 2];

int main(void) {
    unsigned type, flags, channels, format;
    unsigned long seq, rate;
    unsigned long long ts;
    while (scanf("%u %u %u %u %lu %llu %lu %s", &type, &flags, &channels, &format, &seq, &ts, &rate, hex) == 8) {
        size_t plen = 0;
        if (strcmp(hex, "-") != 0) {
            plen = strlen(hex) / 2;
            for (size_t i = 0; i < plen; i++) {
                unsigned v;
                sscanf(hex + 2 * i, "%2x", &v);
                payload[i] = (uint8_t)v;
            }
        }
        ba_header_t h = {(uint8_t)type, (uint8_t)flags, (uint8_t)channels, (uint8_t)format,
                         (uint32_t)seq, (uint64_t)ts, (uint32_t)rate};
        size_t n = ba_frame_build_stream(&h, payload, plen, scratch, out);
        for (size_t i = 0; i < n; i++) printf("%02x", out[i]);
        printf("\n");
    }
    return 0;
}
