/**
 * fnmatch-style wildcards (`*`, `?`, `[seq]`, `[!seq]`) as regular-expression
 * source, shared by build_src_filter and upload_port globs. `*` and `?` never
 * cross a `/`.
 */
export const GLOB_MAGIC = /[*?[]/;

export function isGlob(s: string): boolean {
  return GLOB_MAGIC.test(s);
}

/** Regular-expression source (unanchored) for a wildcard pattern. */
export function fnmatchSource(pattern: string): string {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      // A `]` right after `[` (or `[!`) is a member, as in fnmatch.
      const close = pattern.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, close).replace(/\\/g, "\\\\");
      // `!` negates; a leading `^` is a literal character.
      if (body.startsWith("!")) body = `^${body.slice(1)}`;
      else if (body.startsWith("^")) body = `\\${body}`;
      re += `[${body}]`;
      i = close;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return re;
}
