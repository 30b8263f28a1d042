/**
 * A benchmark's result table as plain text: a title, the header, a rule, the rows, and a
 * closing line; the first column left-aligned, the others right-aligned.
 */
export function renderTable(
  title: string,
  head: readonly string[],
  rows: readonly (readonly string[])[],
  footer: string,
): string {
  const widths = head.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i]?.length ?? 0)))
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
      .join('  ')
  return [
    title,
    '',
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
    footer,
  ].join('\n')
}
