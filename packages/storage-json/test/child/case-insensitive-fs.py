#!/usr/bin/python3
# A case-insensitive, case-preserving passthrough file system (as APFS on macOS and NTFS on Windows
# by default), for case-collision.test.ts: python3 case-insensitive-fs.py <root> <mountpoint>. Needs
# FUSE (/dev/fuse, fusermount) and fusepy (Debian: python3-fusepy).
import errno, os, sys
from fusepy import FUSE, FuseOSError, Operations

class CI(Operations):
    def __init__(self, root): self.root = root
    def _real(self, path, create_last=True):
        cur = self.root
        parts = [p for p in path.split('/') if p]
        for p in parts:
            try: names = os.listdir(cur)
            except OSError: names = []
            match = next((n for n in names if n.lower() == p.lower()), None)
            cur = os.path.join(cur, match if match is not None else p)
        return cur
    def access(self, path, mode):
        if not os.access(self._real(path), mode): raise FuseOSError(errno.EACCES)
    def chmod(self, path, mode): return os.chmod(self._real(path), mode)
    def chown(self, path, uid, gid): return os.chown(self._real(path), uid, gid)
    def getattr(self, path, fh=None):
        st = os.lstat(self._real(path))
        return {k: getattr(st, k) for k in ('st_atime','st_ctime','st_gid','st_mode','st_mtime','st_nlink','st_size','st_uid')}
    def readdir(self, path, fh): return ['.', '..'] + os.listdir(self._real(path))
    def readlink(self, path): return os.readlink(self._real(path))
    def mknod(self, path, mode, dev): return os.mknod(self._real(path), mode, dev)
    def rmdir(self, path): return os.rmdir(self._real(path))
    def mkdir(self, path, mode): return os.mkdir(self._real(path), mode)
    def statfs(self, path):
        s = os.statvfs(self._real(path))
        return {k: getattr(s, k) for k in ('f_bavail','f_bfree','f_blocks','f_bsize','f_favail','f_ffree','f_files','f_flag','f_frsize','f_namemax')}
    def unlink(self, path): return os.unlink(self._real(path))
    def symlink(self, name, target): return os.symlink(target, self._real(name))
    def rename(self, old, new): return os.rename(self._real(old), self._real(new))
    def link(self, target, name): return os.link(self._real(name), self._real(target))
    def utimens(self, path, times=None): return os.utime(self._real(path), times)
    def open(self, path, flags): return os.open(self._real(path), flags)
    def create(self, path, mode, fi=None): return os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    def read(self, path, length, offset, fh): os.lseek(fh, offset, 0); return os.read(fh, length)
    def write(self, path, buf, offset, fh): os.lseek(fh, offset, 0); return os.write(fh, buf)
    def truncate(self, path, length, fh=None):
        if fh is not None: os.ftruncate(fh, length)
        else:
            with open(self._real(path), 'r+') as f: f.truncate(length)
    def flush(self, path, fh): return 0
    def release(self, path, fh): return os.close(fh)
    def fsync(self, path, datasync, fh): return os.fsync(fh)
    def fsyncdir(self, path, datasync, fh): return 0

if __name__ == '__main__':
    FUSE(CI(sys.argv[1]), sys.argv[2], foreground=True, nothreads=True, allow_other=False)
