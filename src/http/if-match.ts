// ETags are the task's version in quotes: strong, and changed by every write.
export function etagOf(version: string): string {
  return `"${version}"`;
}

/**
 * The versions an If-Match header accepts: null when there is no header or it
 * is `*` (any existing task), otherwise the listed strong ETags' versions.
 * Weak or unparseable entries match nothing (RFC 9110 strong comparison), so a
 * header made only of those always fails.
 */
export function parseIfMatch(header: string | undefined): string[] | null {
  if (header === undefined) return null;
  const trimmed = header.trim();
  if (trimmed === '*') return null;
  const versions: string[] = [];
  for (const entry of trimmed.split(',')) {
    const match = /^"(\d{1,18})"$/.exec(entry.trim());
    if (match) versions.push(match[1]);
  }
  return versions;
}
