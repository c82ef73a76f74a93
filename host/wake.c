/* wake -- see wake.h. */
#include "wake.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct wake *w = arg;
	uint64_t n;
	ssize_t r;

	(void)what;
	if ((++w->wakes & 4095) == 0) {
		do
			r = read(fd, &n, sizeof(n));
		while (r < 0 && errno == EINTR);
	}
	w->fn(w->arg);
}

int wake_init(struct wake *w, struct event_base *base, wake_fn fn, void *arg)
{
	w->fn = fn;
	w->arg = arg;
	w->wakes = 0;
	w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->fd < 0)
		return -errno;
	event_assign(&w->ev, base, w->fd, EV_READ | EV_PERSIST | EV_ET, on_wake, w);
	if (event_add(&w->ev, NULL) < 0) {
		close(w->fd);
		w->fd = -1;
		return -EIO;
	}
	return 0;
}

void wake_signal(struct wake *w)
{
	uint64_t one = 1;
	ssize_t r;

	do
		r = write(w->fd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
}

void wake_notify(void *w)
{
	wake_signal(w);
}

void wake_fini(struct wake *w)
{
	if (w->fd < 0)
		return;
	event_del(&w->ev);
	close(w->fd);
	w->fd = -1;
}
