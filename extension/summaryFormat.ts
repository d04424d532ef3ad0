// How a session summary looks in the Summaries view and when opened as a document. Pure.

import type { Summary } from '../server/protocol';

function pad(n: number): string { return String(n).padStart(2, '0'); }

/** "14:05" for today, "Nov 25 14:05" otherwise (local time of `now`'s zone). */
export function summaryTime(time: number, now: number): string {
  const d = new Date(time);
  const today = new Date(now);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === today.toDateString()) return hm;
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  return `${months[d.getMonth()]} ${d.getDate()} ${hm}`;
}

/** One line of the summary's text for the tree item's description. */
export function summaryHeadline(s: Summary): string {
  const text = (s.modelText?.trim() || s.text || '').replace(/\s+/g, ' ').trim();
  if (text) return text.length > 100 ? `${text.slice(0, 99)}…` : text;
  const n = s.digest.files.length;
  return n ? `${n} file${n === 1 ? '' : 's'} touched` : 'nothing happened';
}

/** The summary as a Markdown document (opened from the view, or copied). */
export function summaryMarkdown(s: Summary): string {
  const out: string[] = [`# Endless session summary — ${new Date(s.time).toISOString().replace('T', ' ').slice(0, 19)} UTC`, ''];
  out.push(`Trigger: ${s.trigger} · stream position: ${s.seen} tokens · pinned: ${s.pinnedTokens} tokens`, '');
  if (s.modelText?.trim()) out.push('## Summary', '', s.modelText.trim(), '');
  out.push('## Files touched', '');
  if (!s.digest.files.length) out.push('(none)');
  for (const f of s.digest.files) {
    out.push(`- ${f.path} — ${f.edits} edit${f.edits === 1 ? '' : 's'}, +${f.linesAdded} −${f.linesRemoved}${f.saved ? ', saved' : ''}`);
  }
  if (s.digest.symbols.length) {
    out.push('', '## Symbols', '');
    for (const sym of s.digest.symbols) out.push(`- ${sym.change} ${sym.kind} \`${sym.name}\``);
  }
  if (s.digest.chatTopics.length) {
    out.push('', '## Chat topics', '');
    for (const t of s.digest.chatTopics) out.push(`- ${t}`);
  }
  out.push('', '## Pinned memory', '', '```text', s.text, '```', '');
  return out.join('\n');
}

/** Newest first, no duplicate ids (a summary may arrive both as a notification and in a list). */
export function mergeSummaries(existing: readonly Summary[], incoming: readonly Summary[], max = 200): Summary[] {
  const byId = new Map<string, Summary>();
  for (const s of [...existing, ...incoming]) byId.set(s.id, s);
  return [...byId.values()].sort((a, b) => b.time - a.time).slice(0, max);
}
