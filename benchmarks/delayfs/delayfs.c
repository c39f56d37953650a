/*
 * delayfs: a pass-through FUSE file system that waits a fixed time before
 * every operation, to run cachemgr against latency-bound storage (a LAN NFS
 * answers in about a millisecond) on a local machine.
 *
 *   delayfs SOURCE MOUNTPOINT --delay-us=N --stats=FILE [-o fuse options]
 *
 * Every request the kernel sends (the high-level library turns a LOOKUP into
 * getattr) is counted by type and answered after N microseconds, from the
 * thread that received it: up to MAX_THREADS requests wait at once, as on a
 * network file system with many requests in flight. The kernel caches
 * nothing: entries, attributes and negative lookups time out at once, reads
 * bypass the page cache (direct_io) and READDIRPLUS is off, so that every
 * lstat, open and read is a round trip. The counts are written to FILE
 * (`name count` lines, then `generation N`) on SIGUSR1 and at unmount;
 * SIGUSR2 sets them to zero. benchmarks/delayfs.py builds, mounts and reads
 * it.
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 512

#define OPS(X) \
	X(getattr) X(readlink) X(mknod) X(mkdir) X(unlink) X(rmdir) \
	X(symlink) X(rename) X(link) X(chmod) X(chown) X(truncate) \
	X(open) X(read) X(write) X(statfs) X(flush) X(release) X(fsync) \
	X(opendir) X(readdir) X(releasedir) X(create) X(utimens) X(access)

#define ENUM(name) OP_##name,
enum op { OPS(ENUM) OP_COUNT };
#define NAME(name) #name,
static const char *op_names[] = { OPS(NAME) };

static unsigned long counts[OP_COUNT];
static unsigned long generation;
static long delay_us;
static int source_fd = -1;
static char *stats_path;

struct dir_handle {
	DIR *dir;
	off_t offset;
	struct dirent *entry;
};

/* Count the operation and wait the delay, as a network round trip would. */
static void arrive(enum op op)
{
	__atomic_fetch_add(&counts[op], 1, __ATOMIC_RELAXED);
	if (delay_us > 0) {
		struct timespec wait = { delay_us / 1000000,
					 (delay_us % 1000000) * 1000 };
		while (nanosleep(&wait, &wait) == -1 && errno == EINTR)
			;
	}
}

/* FUSE paths start with '/'; the source is reached relative to its fd. */
static const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

static int result(int rc)
{
	return rc == -1 ? -errno : 0;
}

static void write_stats(void)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", stats_path);
	FILE *out = fopen(tmp, "w");
	if (!out)
		return;
	for (int op = 0; op < OP_COUNT; op++)
		fprintf(out, "%s %lu\n", op_names[op],
			__atomic_load_n(&counts[op], __ATOMIC_RELAXED));
	fprintf(out, "generation %lu\n", ++generation);
	fclose(out);
	rename(tmp, stats_path);
}

/* SIGUSR1 and SIGUSR2 are blocked everywhere else and taken here. */
static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	for (;;) {
		int sig;
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGUSR2)
			for (int op = 0; op < OP_COUNT; op++)
				__atomic_store_n(&counts[op], 0, __ATOMIC_RELAXED);
		write_stats();
	}
	return NULL;
}

static void *dfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Lookups and listings of one directory run in parallel, as on NFS. */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	cfg->use_ino = 1;
	cfg->readdir_ino = 1;
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->direct_io = 1;
	cfg->kernel_cache = 0;
	cfg->nullpath_ok = 1;
	return NULL;
}

static void dfs_destroy(void *data)
{
	(void)data;
	write_stats();
}

static int dfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	arrive(OP_getattr);
	if (fi)
		return result(fstat(fi->fh, st));
	return result(fstatat(source_fd, rel(path), st, AT_SYMLINK_NOFOLLOW));
}

static int dfs_readlink(const char *path, char *buf, size_t size)
{
	arrive(OP_readlink);
	ssize_t n = readlinkat(source_fd, rel(path), buf, size - 1);
	if (n == -1)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int dfs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	arrive(OP_mknod);
	return result(mknodat(source_fd, rel(path), mode, rdev));
}

static int dfs_mkdir(const char *path, mode_t mode)
{
	arrive(OP_mkdir);
	return result(mkdirat(source_fd, rel(path), mode));
}

static int dfs_unlink(const char *path)
{
	arrive(OP_unlink);
	return result(unlinkat(source_fd, rel(path), 0));
}

static int dfs_rmdir(const char *path)
{
	arrive(OP_rmdir);
	return result(unlinkat(source_fd, rel(path), AT_REMOVEDIR));
}

static int dfs_symlink(const char *target, const char *path)
{
	arrive(OP_symlink);
	return result(symlinkat(target, source_fd, rel(path)));
}

static int dfs_rename(const char *from, const char *to, unsigned int flags)
{
	arrive(OP_rename);
	return result(renameat2(source_fd, rel(from), source_fd, rel(to), flags));
}

static int dfs_link(const char *from, const char *to)
{
	arrive(OP_link);
	return result(linkat(source_fd, rel(from), source_fd, rel(to), 0));
}

static int dfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	arrive(OP_chmod);
	if (fi)
		return result(fchmod(fi->fh, mode));
	return result(fchmodat(source_fd, rel(path), mode, 0));
}

static int dfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	arrive(OP_chown);
	if (fi)
		return result(fchown(fi->fh, uid, gid));
	return result(fchownat(source_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int dfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	arrive(OP_truncate);
	if (fi)
		return result(ftruncate(fi->fh, size));
	int fd = openat(source_fd, rel(path), O_WRONLY | O_NOFOLLOW);
	if (fd == -1)
		return -errno;
	int rc = result(ftruncate(fd, size));
	close(fd);
	return rc;
}

static int dfs_open(const char *path, struct fuse_file_info *fi)
{
	arrive(OP_open);
	int fd = openat(source_fd, rel(path), fi->flags & ~O_NOFOLLOW);
	if (fd == -1)
		return -errno;
	fi->fh = fd;
	fi->direct_io = 1;
	return 0;
}

static int dfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	arrive(OP_create);
	int fd = openat(source_fd, rel(path), fi->flags, mode);
	if (fd == -1)
		return -errno;
	fi->fh = fd;
	fi->direct_io = 1;
	return 0;
}

static int dfs_read(const char *path, char *buf, size_t size, off_t offset,
		    struct fuse_file_info *fi)
{
	(void)path;
	arrive(OP_read);
	ssize_t n = pread(fi->fh, buf, size, offset);
	return n == -1 ? -errno : (int)n;
}

static int dfs_write(const char *path, const char *buf, size_t size, off_t offset,
		     struct fuse_file_info *fi)
{
	(void)path;
	arrive(OP_write);
	ssize_t n = pwrite(fi->fh, buf, size, offset);
	return n == -1 ? -errno : (int)n;
}

static int dfs_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	arrive(OP_statfs);
	return result(fstatvfs(source_fd, st));
}

static int dfs_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	arrive(OP_flush);
	return 0;
}

static int dfs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	arrive(OP_release);
	close(fi->fh);
	return 0;
}

static int dfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	arrive(OP_fsync);
	return result(datasync ? fdatasync(fi->fh) : fsync(fi->fh));
}

static int dfs_opendir(const char *path, struct fuse_file_info *fi)
{
	arrive(OP_opendir);
	int fd = openat(source_fd, rel(path), O_RDONLY | O_DIRECTORY);
	if (fd == -1)
		return -errno;
	struct dir_handle *d = calloc(1, sizeof(*d));
	if (!d || !(d->dir = fdopendir(fd))) {
		int err = d ? errno : ENOMEM;
		close(fd);
		free(d);
		return -err;
	}
	fi->fh = (uintptr_t)d;
	return 0;
}

/*
 * Real offsets, so that each READDIR request of the kernel (a page of
 * entries) reaches this function and waits, as each READDIR of NFS does.
 */
static int dfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)path;
	(void)flags;
	arrive(OP_readdir);
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	if (offset != d->offset) {
		seekdir(d->dir, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dir);
			if (!d->entry)
				return errno ? -errno : 0;
		}
		struct stat st = { 0 };
		st.st_ino = d->entry->d_ino;
		st.st_mode = DTTOIF(d->entry->d_type);
		off_t next = telldir(d->dir);
		if (fill(buf, d->entry->d_name, &st, next, 0))
			return 0;
		d->entry = NULL;
		d->offset = next;
	}
}

static int dfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	arrive(OP_releasedir);
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	closedir(d->dir);
	free(d);
	return 0;
}

static int dfs_utimens(const char *path, const struct timespec tv[2],
		       struct fuse_file_info *fi)
{
	arrive(OP_utimens);
	if (fi)
		return result(futimens(fi->fh, tv));
	return result(utimensat(source_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

static int dfs_access(const char *path, int mask)
{
	arrive(OP_access);
	return result(faccessat(source_fd, rel(path), mask, AT_SYMLINK_NOFOLLOW));
}

static const struct fuse_operations operations = {
	.init = dfs_init,
	.destroy = dfs_destroy,
	.getattr = dfs_getattr,
	.readlink = dfs_readlink,
	.mknod = dfs_mknod,
	.mkdir = dfs_mkdir,
	.unlink = dfs_unlink,
	.rmdir = dfs_rmdir,
	.symlink = dfs_symlink,
	.rename = dfs_rename,
	.link = dfs_link,
	.chmod = dfs_chmod,
	.chown = dfs_chown,
	.truncate = dfs_truncate,
	.open = dfs_open,
	.read = dfs_read,
	.write = dfs_write,
	.statfs = dfs_statfs,
	.flush = dfs_flush,
	.release = dfs_release,
	.fsync = dfs_fsync,
	.opendir = dfs_opendir,
	.readdir = dfs_readdir,
	.releasedir = dfs_releasedir,
	.create = dfs_create,
	.utimens = dfs_utimens,
	.access = dfs_access,
};

struct options {
	long delay_us;
	char *stats;
};

static const struct fuse_opt option_spec[] = {
	{ "--delay-us=%ld", offsetof(struct options, delay_us), 0 },
	{ "--stats=%s", offsetof(struct options, stats), 0 },
	FUSE_OPT_END
};

static int usage(const char *self)
{
	fprintf(stderr, "usage: %s SOURCE MOUNTPOINT --delay-us=N --stats=FILE "
		"[-o fuse options]\n", self);
	return 2;
}

int main(int argc, char *argv[])
{
	if (argc < 3)
		return usage(argv[0]);
	const char *source = argv[1];
	const char *mountpoint = argv[2];
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	fuse_opt_add_arg(&args, argv[0]);
	for (int i = 3; i < argc; i++)
		fuse_opt_add_arg(&args, argv[i]);
	struct options options = { 0, NULL };
	if (fuse_opt_parse(&args, &options, option_spec, NULL) == -1 ||
	    !options.stats || options.delay_us < 0)
		return usage(argv[0]);
	delay_us = options.delay_us;
	stats_path = options.stats;
	source_fd = open(source, O_PATH | O_DIRECTORY);
	if (source_fd == -1) {
		perror(source);
		return 1;
	}

	static sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_t thread;
	pthread_create(&thread, NULL, signal_thread, &set);

	struct fuse *fuse = fuse_new(&args, &operations, sizeof(operations), NULL);
	if (!fuse)
		return 1;
	int rc = 1;
	if (fuse_mount(fuse, mountpoint) == 0) {
		if (fuse_set_signal_handlers(fuse_get_session(fuse)) == 0) {
			struct fuse_loop_config *config = fuse_loop_cfg_create();
			fuse_loop_cfg_set_max_threads(config, MAX_THREADS);
			fuse_loop_cfg_set_idle_threads(config, MAX_THREADS);
			rc = fuse_loop_mt(fuse, config) ? 1 : 0;
			fuse_loop_cfg_destroy(config);
			fuse_remove_signal_handlers(fuse_get_session(fuse));
		}
		fuse_unmount(fuse);
	}
	fuse_destroy(fuse);
	fuse_opt_free_args(&args);
	return rc;
}
