#!/bin/sh
# Rebuilds the SEED part of the committed corpora from Tests/Vectors and fixed inputs. Files are
# named by their sha256 (as nghttp2's fuzz corpus is), so re-running adds nothing twice.
#
#   Fuzz/make-seeds.sh          # from anywhere; needs make, a C compiler and sha256sum
#
# fuzz_parse seeds: every vector stream (and its masked server-role mirror) behind the 3-byte
# configuration header, written by `test_engine --emit-seeds`. The other targets get a few
# hand-made inputs that reach their main paths; libFuzzer grows the rest.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
make -s build/test/test_engine >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

add() { # add TARGET FILE: copy FILE into the target's corpus under its sha256
    d="Fuzz/corpus/$1"
    mkdir -p "$d"
    h=$(sha256sum "$2" | cut -d' ' -f1)
    [ -e "$d/$h" ] || cp "$2" "$d/$h"
}
hex() { # hex TARGET HEXSTRING: a seed from hex text
    printf '%s' "$2" | xxd -r -p > "$tmp/h"
    add "$1" "$tmp/h"
}

mkdir -p "$tmp/parse"
./build/test/test_engine --emit-seeds "$tmp/parse" >/dev/null
for f in "$tmp"/parse/*; do add fuzz_parse "$f"; done

# fuzz_mask_diff: align, key[4], phase, split, payload
hex fuzz_mask_diff "0037fa213d0080$(printf 'Hello' | xxd -p)"
hex fuzz_mask_diff "05a1b2c3d4037f$(head -c 300 /dev/zero | tr '\0' 'x' | xxd -p | tr -d '\n')"
hex fuzz_mask_diff "3f00000000020a$(printf 'zero key' | xxd -p)"

# fuzz_utf8_diff: align, flags, corrupt_at, corrupt_with, key[4], phase, 7 x u16 splits, text
splits="0100020003000400050006000700"
hex fuzz_utf8_diff "000e000037fa213d01${splits}$(printf 'Hello, \303\251\342\202\254\360\235\204\236!' | xxd -p)"
hex fuzz_utf8_diff "070f05ed37fa213d02${splits}$(head -c 600 /dev/zero | tr '\0' 'A' | xxd -p | tr -d '\n')"
hex fuzz_utf8_diff "10060000000000000028000a00ffff0000000000000000$(printf '\316\272\341\275\271\317\203\316\274\316\265\355\240\200' | xxd -p)"

# fuzz_handshake: mode 0 = raw key, mode 1 = nonce -> key (+ optional corruption)
hex fuzz_handshake "00$(printf 'dGhlIHNhbXBsZSBub25jZQ==' | xxd -p)"
hex fuzz_handshake "00$(printf 'dGhlIHNhbXBsZSBub25jZR==' | xxd -p)"
hex fuzz_handshake "01000102030405060708090a0b0c0d0e0f0000"
hex fuzz_handshake "01ffffffffffffffffffffffffffffffff3d15"

# fuzz_writer: op, status(u16), then the op's fields
hex fuzz_writer "0033ff01000105003700fa213d0e"       # header: fin, text, len 5, masked
hex fuzz_writer "00000003400202ff7f37fa213d0e"        # header: 16-bit length, RSV1
hex fuzz_writer "0100ff0901aabbccdd409005$(printf 'Hello' | xxd -p)"  # ping, masked
hex fuzz_writer "0200ffe80301aabbccdd409003$(printf 'bye' | xxd -p)"  # close 1000 "bye"
hex fuzz_writer "0300ff030140000400a1b2c3d4550701$(printf 'fragmented message text' | xxd -p)"
hex fuzz_writer "0300ff0201000000000000000000000041$(printf 'x' | xxd -p)"

for t in fuzz_parse fuzz_mask_diff fuzz_utf8_diff fuzz_handshake fuzz_writer; do
    echo "$t: $(ls "Fuzz/corpus/$t" | wc -l) files"
done
