"""Small, valid audio files made in memory for tests and benchmarks: WAV (PCM), MP3 (MPEG-1 layer III frames)
and Ogg Vorbis (the three header packets and a last page whose granule position gives the length).

The audio itself is silence or noise; what matters is that the headers are what a real encoder writes, so a
parser reads the duration from them.
"""

from __future__ import annotations

import io
import os
import struct
import wave

MP3_FRAME_BYTES = 417  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding: 144 * 128000 / 44100
MP3_FRAME_SECONDS = 1152 / 44100


def wav(seconds: float = 1.0, rate: int = 8000, noise: bool = False) -> bytes:
    frames = int(seconds * rate)
    pcm = os.urandom(frames * 2) if noise else b"\x00\x00" * frames
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def mp3(seconds: float = 1.0) -> bytes:
    header = bytes([0xFF, 0xFB, 0x90, 0x64])  # sync, MPEG-1 layer III no CRC; 128 kbit/s 44.1 kHz; mono
    frame = header + bytes(MP3_FRAME_BYTES - len(header))
    return frame * max(1, round(seconds / MP3_FRAME_SECONDS))


def ogg(seconds: float = 1.0, rate: int = 8000) -> bytes:
    identification = (b"\x01vorbis" + struct.pack("<IBI", 0, 1, rate) + struct.pack("<iii", 0, 32000, 0)
                      + bytes([0xB8, 0x01]))
    vendor = b"crm tests"
    comment = b"\x03vorbis" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0) + b"\x01"
    setup = b"\x05vorbis" + bytes(32)
    pages = [
        _ogg_page(identification, granule=0, sequence=0, flags=0x02),
        _ogg_page(comment, granule=0, sequence=1),
        _ogg_page(setup, granule=0, sequence=2),
        _ogg_page(bytes(200), granule=int(seconds * rate), sequence=3, flags=0x04),
    ]
    return b"".join(pages)


def _ogg_page(packet: bytes, granule: int, sequence: int, flags: int = 0, serial: int = 0x5EED) -> bytes:
    segments, rest = [], len(packet)
    while rest >= 255:
        segments.append(255)
        rest -= 255
    segments.append(rest)
    header = (b"OggS" + bytes([0, flags]) + struct.pack("<qIII", granule, serial, sequence, 0)
              + bytes([len(segments)]) + bytes(segments))
    page = header + packet
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def padded(data: bytes, size: int) -> bytes:
    """``data`` grown to ``size`` bytes with noise after it (a long recording without its cost in headers)."""
    return data + os.urandom(max(0, size - len(data)))
