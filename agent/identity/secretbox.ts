import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { KithError } from '../../common/errors.ts';

// scrypt cost: ~100 ms and 32 MiB once per start, so guessing passphrases from a stolen disk is slow.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/** A key derived from the node passphrase that seals secrets at rest (AES-256-GCM). */
export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  static derive(passphrase: string, salt: Buffer): SecretBox {
    return new SecretBox(scryptSync(passphrase.normalize('NFC'), salt, 32, SCRYPT));
  }

  static newSalt(): Buffer {
    return randomBytes(16);
  }

  /** nonce(12) | tag(16) | ciphertext; `label` binds the secret to its purpose. */
  seal(plaintext: Uint8Array, label: string): Buffer {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(label));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([nonce, cipher.getAuthTag(), body]);
  }

  open(sealed: Uint8Array, label: string): Buffer {
    const buf = Buffer.from(sealed);
    if (buf.length < 28) throw new KithError('ERR_KEYS_CORRUPT', `the stored ${label} is truncated`, RESTORE);
    const decipher = createDecipheriv('aes-256-gcm', this.key, buf.subarray(0, 12));
    decipher.setAAD(Buffer.from(label));
    decipher.setAuthTag(buf.subarray(12, 28));
    try {
      return Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]);
    } catch {
      throw new KithError('ERR_WRONG_PASSPHRASE', 'wrong passphrase (or the stored keys are damaged)', RETRY);
    }
  }
}

const RESTORE = 'restore the data directory from a backup';
const RETRY = 'try again with the passphrase given at `kith init` (KITH_PASSPHRASE for services)';
