import { extname } from 'node:path';

const TYPES: Record<string, string> = {
  '.webm': 'video/webm',
  '.mkv': 'video/x-matroska',
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.mov': 'video/quicktime',
  '.ogg': 'audio/ogg',
  '.ogv': 'video/ogg',
  '.opus': 'audio/ogg',
  '.oga': 'audio/ogg',
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/wav',
  '.flac': 'audio/flac',
  '.aac': 'audio/aac',
  '.ts': 'video/mp2t',
  '.pdf': 'application/pdf',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
};

/**
 * Content-Type from a file name: what players and browsers need to pick a demuxer. Unknown
 * names get application/octet-stream (a download), never a guess from the bytes, which the
 * sender chose (sniffing would let a sender make the browser run HTML from a loopback origin).
 */
export function mediaTypeOf(name: string): string {
  return TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

/** A declared type a sender may give a live stream: a media type, nothing that renders as a page. */
export function safeMediaType(declared: string | undefined, name: string): string {
  if (declared && /^(audio|video)\/[a-z0-9.+-]{1,60}$/i.test(declared)) return declared.toLowerCase();
  return mediaTypeOf(name);
}
