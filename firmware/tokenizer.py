"""llama2.c's byte-pair tokenizer, reading the vocabulary in place from the blob.

    tok = Tokenizer(section)            # the blob's tokenizer section (bytes or memoryview)
    ids = tok.encode("Once upon a time")  # [1, 403, 407, 261, 378]
    tok.piece_span(prev, ids[1])        # where the text of a token sits in the section

Encoding is run.c's: BOS, a dummy-prefix space (as sentencepiece does) for non-empty text,
UTF-8 characters looked up whole or else spelled as byte tokens (id = byte + 3), then the
adjacent pair with the best merge score merged until no pair is in the vocabulary.
Decoding drops the leading space of a piece after BOS and turns "<0xXX>" pieces into the
byte they name.
"""

import struct

import blobfmt

BOS = 1
EOS = 2
_BYTE_TOKEN_BASE = 3


class Tokenizer:
    def __init__(self, section):
        self.data = section
        self.vocab_size, self.max_token_length = struct.unpack_from("<II", section, 0)
        (self._ranks, self._offsets, self._sorted,
         self._pieces) = blobfmt.tokenizer_layout(self.vocab_size)
        # Piece i is section[pieces_at + offset(i):pieces_at + offset(i + 1)], offset(i)
        # the u32 at offsets_at + 4*i.
        self.pieces_at = self._pieces
        self.offsets_at = self._offsets

    def span(self, token):
        """(start, end) of a token's piece in the section."""
        start, end = struct.unpack_from("<II", self.data, self._offsets + 4 * token)
        return self._pieces + start, self._pieces + end

    def piece(self, token):
        start, end = self.span(token)
        return bytes(self.data[start:end])

    def rank(self, token):
        """The piece's merge score as a rank: only the order of scores matters."""
        return struct.unpack_from("<H", self.data, self._ranks + 2 * token)[0]

    def lookup(self, text):
        """The id of the piece equal to `text` (bytes), or -1: binary search, as run.c."""
        lo, hi = 0, self.vocab_size - 1
        data = self.data
        while lo <= hi:
            mid = (lo + hi) // 2
            token = struct.unpack_from("<H", data, self._sorted + 2 * mid)[0]
            start, end = self.span(token)
            piece = bytes(data[start:end])
            if piece == text:
                return token
            if piece < text:
                lo = mid + 1
            else:
                hi = mid - 1
        return -1

    def encode(self, text, bos=True, eos=False):
        """Token ids of `text` (str or UTF-8 bytes), exactly as run.c's encode()."""
        if isinstance(text, str):
            text = text.encode()
        tokens = []
        if bos:
            tokens.append(BOS)
        if text:
            tokens.append(self.lookup(b" "))

        i, n = 0, len(text)
        while i < n:
            # One UTF-8 character: a lead byte and at most three continuation bytes.
            j = i + 1
            while j < n and (text[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            char = text[i:j]
            token = self.lookup(char)
            if token != -1:
                tokens.append(token)
            else:
                for b in char:
                    tokens.append(b + _BYTE_TOKEN_BASE)
            i = j

        while True:
            best_rank, best_id, best_at = -1, -1, -1
            for k in range(len(tokens) - 1):
                token = self.lookup(self.piece(tokens[k]) + self.piece(tokens[k + 1]))
                if token != -1:
                    rank = self.rank(token)
                    if rank > best_rank:
                        best_rank, best_id, best_at = rank, token, k
            if best_at == -1:
                break
            tokens[best_at] = best_id
            del tokens[best_at + 1]

        if eos:
            tokens.append(EOS)
        return tokens
