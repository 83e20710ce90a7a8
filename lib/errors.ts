// Errors. Kernel-like failures are DmaBufError with a stable `code` ('EINVAL',
// 'ENOENT', ...) and a negative `errno`, as Node's system errors do. Wrong
// argument types are TypeError (ERR_INVALID_ARG_TYPE); out-of-range numbers are
// RangeError (ERR_OUT_OF_RANGE).
import { constants } from 'node:os';
import { inspect } from 'node:util';

// A null-prototype copy (as os.constants.errno is): 'toString' is no errno name.
const errnoByName: Record<string, number> = Object.assign(Object.create(null) as Record<string, number>, constants.errno);
// Linux errnos that Node's os.constants.errno leaves out (it has libuv's
// portable set), with the generic numbering (asm-generic/errno.h) of the
// architectures Node runs on. udmabuf, for one, says EBADFD (77).
const LINUX_EXTRA =
  'ENOTBLK=15 ECHRNG=44 EL2NSYNC=45 EL3HLT=46 EL3RST=47 ELNRNG=48 EUNATCH=49 ENOCSI=50 EL2HLT=51 ' +
  'EBADE=52 EBADR=53 EXFULL=54 ENOANO=55 EBADRQC=56 EBADSLT=57 EBFONT=59 ENONET=64 ENOPKG=65 ' +
  'EREMOTE=66 EADV=68 ESRMNT=69 ECOMM=70 EDOTDOT=73 ENOTUNIQ=76 EBADFD=77 EREMCHG=78 ELIBACC=79 ' +
  'ELIBBAD=80 ELIBSCN=81 ELIBMAX=82 ELIBEXEC=83 ERESTART=85 ESTRPIPE=86 EUSERS=87 ' +
  'ESOCKTNOSUPPORT=94 EPFNOSUPPORT=96 ESHUTDOWN=108 ETOOMANYREFS=109 EHOSTDOWN=112 EUCLEAN=117 ' +
  'ENOTNAM=118 ENAVAIL=119 EISNAM=120 EREMOTEIO=121 ENOMEDIUM=123 EMEDIUMTYPE=124 ENOKEY=126 ' +
  'EKEYEXPIRED=127 EKEYREVOKED=128 EKEYREJECTED=129 EOWNERDEAD=130 ENOTRECOVERABLE=131 ERFKILL=132';
if (process.platform === 'linux' && ['x64', 'ia32', 'arm', 'arm64', 'riscv64', 's390x', 'ppc64', 'loong64'].includes(process.arch)) {
  for (const pair of LINUX_EXTRA.split(' ')) {
    const [name, num] = pair.split('=') as [string, string];
    if (!(name in errnoByName)) errnoByName[name] = Number(num);
  }
}
const nameByErrno = new Map<number, string>();
// Where two names share a number, the kernel's spelling wins (Linux's 95 is
// EOPNOTSUPP in kernel code; libuv lists ENOTSUP first).
if (errnoByName.EOPNOTSUPP !== undefined) nameByErrno.set(errnoByName.EOPNOTSUPP, 'EOPNOTSUPP');
for (const [name, num] of Object.entries(errnoByName)) {
  if (!nameByErrno.has(num)) nameByErrno.set(num, name);
}

/** The errno name for a (positive or negative) errno number, e.g. -22 → 'EINVAL'. */
export function errnoName(errno: number): string {
  return nameByErrno.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** The negative errno for a name, e.g. 'EIO' → -5; undefined if unknown. */
export function errnoNumber(name: string): number | undefined {
  const n = errnoByName[name];
  return n === undefined ? undefined : -n;
}

/** A failure the kernel would report with an errno. */
export class DmaBufError extends Error {
  /** Stable errno name, e.g. 'EINVAL'. */
  readonly code: string;
  /** Negative errno, e.g. -22. */
  readonly errno: number;
  /** The operation (ioctl or function) that failed, when there is one. */
  readonly syscall: string | undefined;

  constructor(code: string | number, message: string, syscall?: string) {
    const name = typeof code === 'number' ? errnoName(code) : code;
    super(`${name}: ${message}`);
    this.name = 'DmaBufError';
    this.code = name;
    this.errno = typeof code === 'number' ? -Math.abs(code) : errnoNumber(code) ?? 0;
    this.syscall = syscall;
  }
}

/** Whether `e` is a DmaBufError, optionally with the given code. */
export function isDmaBufError(e: unknown, code?: string): e is DmaBufError {
  return e instanceof DmaBufError && (code === undefined || e.code === code);
}

function describeReceived(v: unknown): string {
  if (v === null || v === undefined) return `Received ${v}`;
  if (typeof v === 'function') return `Received function ${v.name || '<anonymous>'}`;
  if (typeof v === 'object') {
    const ctor = (v as object).constructor?.name;
    return ctor ? `Received an instance of ${ctor}` : `Received ${inspect(v, { depth: -1 })}`;
  }
  return `Received type ${typeof v} (${inspect(v)})`;
}

export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const e = new TypeError(`The "${name}" argument must be ${expected}. ${describeReceived(actual)}`);
  (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

export function invalidArgValue(name: string, reason: string, actual: unknown): TypeError {
  const e = new TypeError(`The argument "${name}" ${reason}. Received ${inspect(actual)}`);
  (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  return e;
}

export function outOfRange(name: string, range: string, actual: unknown): RangeError {
  const e = new RangeError(
    `The value of "${name}" is out of range. It must be ${range}. Received ${inspect(actual)}`,
  );
  (e as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return e;
}

export function abortError(reason: unknown): Error {
  const e = new Error('The operation was aborted', { cause: reason });
  e.name = 'AbortError';
  (e as Error & { code: string }).code = 'ABORT_ERR';
  return e;
}

export const U64_MAX = (1n << 64n) - 1n;

/** A u64 given as bigint or non-negative safe integer. */
export function toU64(name: string, v: unknown): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX) throw outOfRange(name, '>= 0n and <= 2n ** 64n - 1n', v);
    return v;
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw outOfRange(name, 'a non-negative safe integer', v);
    return BigInt(v);
  }
  throw invalidArgType(name, 'of type bigint or number', v);
}

/** An i64 nanosecond value given as bigint. */
export function toI64(name: string, v: unknown): bigint {
  if (typeof v !== 'bigint') throw invalidArgType(name, 'of type bigint', v);
  if (v < -(1n << 63n) || v >= 1n << 63n) throw outOfRange(name, 'a signed 64-bit value', v);
  return v;
}

/** A timeout in milliseconds: a non-negative number or Infinity; undefined = forever. */
export function toTimeoutNs(name: string, ms: unknown): number {
  if (ms === undefined || ms === Infinity) return -1;
  if (typeof ms !== 'number') throw invalidArgType(name, 'of type number', ms);
  if (!(ms >= 0)) throw outOfRange(name, '>= 0 (milliseconds) or Infinity', ms);
  return Math.min(Math.round(ms * 1e6), 9.2e18);
}
