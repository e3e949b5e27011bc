import { joinMessage, LIST_FIELD_NAMES, listId, phrase, splitMessage, withLineEnd } from '../headers.ts';

/** Which bridge a message crosses, as its header fields name it. */
export interface BridgeAddress {
  /** The Kith list's name and address. */
  name: string;
  email: string;
  /** The outside list's posting address. */
  listAddress: string;
  /** The address subscribed to the outside list, which posts go out from. */
  address: string;
}

/** Fields of the network copy that the outside copy writes anew or must not carry. */
const REPLACED = new Set([
  'from',
  'sender',
  'x-original-from',
  'precedence',
  'x-loop',
  'message-id',
  ...LIST_FIELD_NAMES,
]);

/**
 * The copy of a network member's post that goes to the outside list, made from the copy the
 * members got (headers.ts rewritePost: routing already stripped). From: is the bridge's subscribed
 * address (the outside list takes posts from its subscribers, and the member's Kith address means
 * nothing outside) with the poster's name only: members do not learn each other's addresses, so
 * the outside world does not either. X-Loop names the bridge, so that the copy the outside list
 * sends back to our mailbox is known at once (the Message-ID memory catches it too, should the list
 * remove X-Loop). List-Id names the Kith side and List-Post the outside list, where replies belong.
 * To: and Cc: name the outside list where they named the Kith list. Message-ID stays (threading
 * on both sides), or is made from the post's Kith id.
 */
export function outsideCopy(
  networkCopy: Buffer,
  bridge: BridgeAddress,
  posterName: string,
  fallbackId: string,
): { raw: Buffer; messageId: string } {
  const { header, body, fields } = splitMessage(networkCopy);
  const messageId =
    fields.find((f) => f.name.toLowerCase() === 'message-id')?.value.trim() || `<${fallbackId}@kith>`;
  const kept: Buffer[] = [];
  const kithAddress = bridge.email.toLowerCase();
  for (const f of fields) {
    const name = f.name.trim().toLowerCase();
    if (REPLACED.has(name)) continue;
    if ((name === 'to' || name === 'cc') && f.value.toLowerCase().includes(kithAddress)) {
      // The member wrote to the Kith list; outside, that is the outside list (list managers such
      // as mlmmj refuse a post whose To:/Cc: does not name them).
      const value = f.value.replace(new RegExp(escapeRegExp(kithAddress), 'gi'), bridge.listAddress);
      kept.push(Buffer.from(`${f.name}: ${value}\r\n`));
      continue;
    }
    kept.push(withLineEnd(header.subarray(f.start, f.end)));
  }
  const added = [
    `From: ${phrase(`${posterName} via ${bridge.name}`)} <${bridge.address}>`,
    `Sender: <${bridge.address}>`,
    `Message-ID: ${messageId}`,
    `List-Id: ${phrase(`${bridge.name} (Kith)`)} <${listId(bridge.email)}>`,
    `List-Post: <mailto:${bridge.listAddress}>`,
    `X-Loop: ${bridge.address}`,
  ];
  return { raw: joinMessage(added, kept, body), messageId };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
