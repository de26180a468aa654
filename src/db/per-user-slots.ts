// At most `perUser` of one user's lists are streamed at once by this process;
// the next waits for a slot, and gives up after `waitMs` (503 with
// Retry-After). A long list holds a pooled connection while its client reads
// it, so without this one user looping on a huge list from many clients
// would hold every connection and everyone else would wait.

/** No slot became free in time. */
export class UserBusyError extends Error {}

export interface UserSlots {
  /** Resolves with the function that gives the slot back (call it exactly once). */
  acquire(user: string): Promise<() => void>;
}

export function createUserSlots(perUser: number, waitMs: number): UserSlots {
  const users = new Map<string, { active: number; waiting: (() => void)[] }>();

  function release(user: string) {
    const entry = users.get(user)!;
    const next = entry.waiting.shift();
    if (next) return next(); // the slot passes straight to the next in line
    entry.active -= 1;
    if (entry.active === 0) users.delete(user);
  }

  return {
    acquire(user) {
      let entry = users.get(user);
      if (!entry) users.set(user, (entry = { active: 0, waiting: [] }));
      let released = false;
      const giveBack = () => {
        if (released) return;
        released = true;
        release(user);
      };
      if (entry.active < perUser) {
        entry.active += 1;
        return Promise.resolve(giveBack);
      }
      const queue = entry.waiting;
      return new Promise((resolve, reject) => {
        const granted = () => {
          clearTimeout(timer);
          resolve(giveBack);
        };
        const timer = setTimeout(() => {
          queue.splice(queue.indexOf(granted), 1);
          reject(new UserBusyError('too many of this user\'s lists are being sent at once'));
        }, waitMs);
        queue.push(granted);
      });
    },
  };
}
