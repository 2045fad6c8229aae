/**
 * Splits rendered shell text into words the way sh would for the quoting `quote()` produces: bare
 * characters, '...' segments and \x escapes, separated by unquoted blanks. Enough to show that a value
 * stays one word; the quoting itself is proven against /bin/sh in cmd.test.ts.
 */
export const words = (text: string): string[] => {
  const out: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) throw new Error(`unterminated quote in ${text}`);
      word = (word ?? '') + text.slice(i + 1, end);
      i = end;
    } else if (ch === '\\') {
      word = (word ?? '') + text.charAt(i + 1);
      i++;
    } else if (ch === ' ' || ch === '\t' || ch === '\n') {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + ch;
    }
  }
  if (word !== undefined) out.push(word);
  return out;
};
