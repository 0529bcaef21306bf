// Inline requests: one line of words, as typed into `nc` or telnet (`SET "a b" 1`). Split the way Redis's
// sdssplitargs does, so that a line means here what it means to Redis.

const space = 0x20;
const doubleQuote = 0x22;
const singleQuote = 0x27;
const backslash = 0x5c;

/** The words of an inline request line (without its line ending), or null when a quote is left open. */
export function splitInlineArguments(line: Buffer): Buffer[] | null {
  const words: Buffer[] = [];
  let position = 0;
  for (;;) {
    while (position < line.length && isSpace(line[position] as number)) position++;
    if (position >= line.length) return words;
    const word: number[] = [];
    let inDoubleQuotes = false;
    let inSingleQuotes = false;
    for (let done = false; !done; ) {
      const byte = line[position];
      if (inDoubleQuotes) {
        if (byte === undefined) return null;
        const next = line[position + 1];
        if (byte === backslash && next === 0x78 /* x */ && isHexDigit(line[position + 2]) && isHexDigit(line[position + 3])) {
          word.push(Number.parseInt(line.toString("latin1", position + 2, position + 4), 16));
          position += 3;
        } else if (byte === backslash && next !== undefined) {
          position++;
          word.push(escapedByte(next));
        } else if (byte === doubleQuote) {
          // A closing quote must end the word: `"foo"bar` is as unbalanced as `"foo`.
          if (next !== undefined && !isSpace(next)) return null;
          done = true;
        } else {
          word.push(byte);
        }
      } else if (inSingleQuotes) {
        if (byte === undefined) return null;
        const next = line[position + 1];
        if (byte === backslash && next === singleQuote) {
          position++;
          word.push(singleQuote);
        } else if (byte === singleQuote) {
          if (next !== undefined && !isSpace(next)) return null;
          done = true;
        } else {
          word.push(byte);
        }
      } else if (byte === undefined || isSpace(byte)) {
        done = true;
      } else if (byte === doubleQuote) {
        inDoubleQuotes = true;
      } else if (byte === singleQuote) {
        inSingleQuotes = true;
      } else {
        word.push(byte);
      }
      if (position < line.length) position++;
    }
    words.push(Buffer.from(word));
  }
}

function isSpace(byte: number): boolean {
  // C's isspace: space, \t, \n, \v, \f, \r.
  return byte === space || (byte >= 0x09 && byte <= 0x0d);
}

function isHexDigit(byte: number | undefined): boolean {
  return byte !== undefined && ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66));
}

function escapedByte(byte: number): number {
  switch (byte) {
    case 0x6e: // n
      return 0x0a;
    case 0x72: // r
      return 0x0d;
    case 0x74: // t
      return 0x09;
    case 0x62: // b
      return 0x08;
    case 0x61: // a
      return 0x07;
    default:
      return byte;
  }
}
