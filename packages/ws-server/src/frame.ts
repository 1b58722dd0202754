import * as ws from 'ws';

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}

// ws 8 exports `Sender` (with its static `frame`) but @types/ws does not declare it.
const Sender = (ws as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } }).Sender;
const FRAME_OPTIONS: FrameOptions = { fin: true, opcode: 0x01, mask: false, readOnly: false, rsv1: false };

/**
 * Builds a complete unmasked WebSocket text frame (header + payload) once, so that the same bytes
 * can be written to every client without serializing or framing again.
 */
export function textFrame(text: string): Buffer {
  const parts = Sender.frame(Buffer.from(text, 'utf8'), FRAME_OPTIONS);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
