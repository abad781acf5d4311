/*
 * binaura link protocol v1: reference frame encoder for firmware.
 * Mirrors firmware_bridge/protocol.py; spec: docs/bridge-protocol.md.
 * Dependency-free C99: no malloc, no libc beyond memcpy/memset.
 */
#ifndef BINAURA_LINK_H
#define BINAURA_LINK_H

#include <stddef.h>
#include <stdint.h>

#define BA_MAGIC0 0x42 /* 'B' */
#define BA_MAGIC1 0x41 /* 'A' */
#define BA_VERSION 1
#define BA_HEADER_SIZE 26
#define BA_CRC_SIZE 4
#define BA_MAX_PAYLOAD 16384
/* The host refuses frames outside these rules (docs/bridge-protocol.md, "Validation"):
 * audio sample rate in [BA_MIN_SAMPLE_RATE_HZ, BA_MAX_SAMPLE_RATE_HZ], 2 channels, a known
 * format, payload a positive multiple of channels x bytes per sample, finite f32 samples;
 * control and orientation frames carry channels 0, format 0, sample rate 0 (or in range), and
 * their fixed payload length (HELLO 48, SET_GAIN 2, HEARTBEAT 4, START/STOP 0, ORIENTATION 16);
 * an ORIENTATION quaternion is finite; timestamps < 2^53 us. */
#define BA_MIN_SAMPLE_RATE_HZ 8000u
#define BA_MAX_SAMPLE_RATE_HZ 192000u
#define BA_ORIENTATION_PAYLOAD 16 /* quaternion w, x, y, z: 4 x float32 */
#define BA_MAX_FRAME (BA_HEADER_SIZE + BA_MAX_PAYLOAD + BA_CRC_SIZE)
/* Worst-case COBS size of a frame plus the 0x00 delimiter. */
#define BA_MAX_ENCODED (BA_MAX_FRAME + BA_MAX_FRAME / 254 + 2)

enum ba_type { BA_AUDIO = 0, BA_HELLO = 1, BA_START = 2, BA_STOP = 3, BA_SET_GAIN = 4, BA_HEARTBEAT = 5,
               BA_ORIENTATION = 6 };
enum ba_flags { BA_DISCONTINUITY = 0x01, BA_CLIPPED = 0x02, BA_DEVICE_OVERRUN = 0x04 };
enum ba_format { BA_S16 = 1, BA_S24 = 2, BA_F32 = 3 };

typedef struct {
    uint8_t type;
    uint8_t flags;
    uint8_t channels;      /* 2 for audio (L, R); 0 for control */
    uint8_t sample_format; /* enum ba_format; 0 for control */
    uint32_t seq;          /* one counter for every frame; wraps */
    uint64_t timestamp_us; /* device time of the first sample (audio), of the reading (orientation) */
    uint32_t sample_rate_hz;
} ba_header_t;

/* CRC-32C (Castagnoli, reflected 0x1EDC6F41, init and xorout 0xFFFFFFFF). */
uint32_t ba_crc32c(const uint8_t *data, size_t len);

/* Build a raw frame (header + payload + CRC) into out (>= BA_HEADER_SIZE + len + 4 bytes).
 * Returns the frame length, or 0 if payload_len exceeds BA_MAX_PAYLOAD. */
size_t ba_frame_build(const ba_header_t *h, const uint8_t *payload, size_t payload_len, uint8_t *out);

/* The ORIENTATION payload: the head-to-world rotation as a quaternion q = {w, x, y, z}, each an
 * IEEE-754 float32, little-endian. It rotates head-frame vectors (+x ahead, +y left, +z up) into
 * a world frame the device keeps (yaw + = head turned left). Send it in a frame of type
 * BA_ORIENTATION, flags 0, channels 0, format 0, sample rate 0, with timestamp_us the moment of
 * the reading on the clock that stamps the audio frames. The host refuses NaN or Inf, and
 * normalises a quaternion whose norm is within 0.05 of 1 (refusing one further off). */
void ba_orientation_payload(const float q[4], uint8_t out[BA_ORIENTATION_PAYLOAD]);

/* COBS-encode len bytes into out (no delimiter). Returns the encoded length. */
size_t ba_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);

/* Frame + COBS + 0x00 delimiter, ready for a UART / USB CDC write. Returns bytes written. */
size_t ba_frame_build_stream(const ba_header_t *h, const uint8_t *payload, size_t payload_len,
                             uint8_t *scratch /* BA_MAX_FRAME */, uint8_t *out /* BA_MAX_ENCODED */);

#endif
