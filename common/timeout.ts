import { KithError } from './errors.ts';

/** `promise`, or undefined once `ms` passed without it settling (it is then left to itself). */
export async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for `what` to stop (`stop`, its promise); fails with ERR_STOP_TIMEOUT after `ms`. */
export async function stopWithin(stop: Promise<unknown>, ms: number, what: string): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new KithError('ERR_STOP_TIMEOUT', `${what} did not stop within ${ms} ms`)),
      ms,
    );
  });
  try {
    await Promise.race([stop, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
