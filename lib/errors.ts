// Errors. Kernel-like failures are DmaBufError with a stable `code` ('EINVAL',
// 'ENOENT', ...) and a negative `errno`, as Node's system errors do. Wrong
// argument types are TypeError (ERR_INVALID_ARG_TYPE); out-of-range numbers are
// RangeError (ERR_OUT_OF_RANGE): those and the argument checks are package
// internals (internal/args.ts).
import { constants } from 'node:os';

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

/**
 * Every errno name a DmaBufError can carry: the ones this package's code
 * produces and the ones the kernel backend passes through from the syscalls and
 * ioctls it makes (open, ioctl, mmap, poll, memfd, dlopen, and lseek, which is
 * ESPIPE on a `dmabuf run` broker's socket that is not a dma-buf). test/types.test.ts
 * checks that every errno the sources name is here.
 */
export const DMABUF_ERROR_CODES = Object.freeze([
  'EACCES', 'EADDRINUSE', 'EAGAIN', 'EALREADY', 'EBADF', 'EBADFD', 'EBUSY', 'ECANCELED',
  'ECONNREFUSED', 'ECONNRESET', 'EDEADLK', 'EEXIST', 'EFAULT', 'EFBIG', 'EINTR', 'EINVAL', 'EIO',
  'EISDIR', 'EMFILE', 'EMSGSIZE', 'ENAMETOOLONG', 'ENFILE', 'ENODEV', 'ENOENT', 'ENOEXEC', 'ENOMEM',
  'ENOSPC', 'ENOSYS', 'ENOTCONN', 'ENOTDIR', 'ENOTTY', 'ENXIO', 'EOPNOTSUPP', 'EOVERFLOW', 'EPERM',
  'EPIPE', 'EPROTO', 'ESPIPE', 'ESRCH', 'ETIME', 'ETIMEDOUT',
] as const);

/** The errno name of a DmaBufError: `e.code === 'EBUSY'` narrows, and a typo fails to compile. */
export type DmaBufErrorCode = (typeof DMABUF_ERROR_CODES)[number];

/** A failure the kernel would report with an errno. */
export class DmaBufError extends Error {
  /** Stable errno name, e.g. 'EINVAL'. */
  readonly code: DmaBufErrorCode;
  /** Negative errno, e.g. -22. */
  readonly errno: number;
  /** The operation (ioctl or function) that failed, when there is one. */
  readonly syscall: string | undefined;

  constructor(code: string | number, message: string, syscall?: string) {
    const name = typeof code === 'number' ? errnoName(code) : code;
    super(`${name}: ${message}`);
    this.name = 'DmaBufError';
    this.code = name as DmaBufErrorCode;
    this.errno = typeof code === 'number' ? -Math.abs(code) : errnoNumber(code) ?? 0;
    this.syscall = syscall;
  }
}

/** Whether `e` is a DmaBufError, optionally with the given code. */
export function isDmaBufError(e: unknown, code?: DmaBufErrorCode): e is DmaBufError {
  return e instanceof DmaBufError && (code === undefined || e.code === code);
}
