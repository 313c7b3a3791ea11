/**
 * gcc `-MMD` depfiles (make syntax): `obj: src hdr1 \
 *   hdr2`. Escapes: `\ ` is a space in a name, `$$` is `$`, `\#` is `#`.
 */
export function parseDepfile(text: string): string[] {
  const colon = findTargetColon(text);
  if (colon < 0) return [];
  const body = text.slice(colon + 1);
  const deps: string[] = [];
  let cur = "";
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === "\\") {
      const next = body[i + 1];
      if (next === "\n" || (next === "\r" && body[i + 2] === "\n")) {
        i += next === "\r" ? 2 : 1;
        if (cur) deps.push(cur);
        cur = "";
        continue;
      }
      if (next === " " || next === "#" || next === "\\") {
        cur += next;
        i++;
        continue;
      }
      cur += ch;
    } else if (ch === "$" && body[i + 1] === "$") {
      cur += "$";
      i++;
    } else if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      if (cur) deps.push(cur);
      cur = "";
      // A second rule (phony targets from -MP) ends the first.
      if (ch === "\n" && /^\S[^\n]*:/.test(body.slice(i + 1))) break;
    } else {
      cur += ch;
    }
  }
  if (cur) deps.push(cur);
  return deps;
}

/** The colon ending the target, skipping a Windows drive letter (`C:\…`). */
function findTargetColon(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ":" && !(i === 1 && /[A-Za-z]/.test(text[0]!)) && text[i + 1] !== "\\") return i;
    if (text[i] === ":" && (text[i + 1] === " " || text[i + 1] === "\n" || text[i + 1] === undefined)) return i;
  }
  return -1;
}
