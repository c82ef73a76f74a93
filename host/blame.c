/*
 * blame -- see blame.h. The only state is one thread-local pointer; in the
 * executable it uses the local-exec TLS model, so reading it from a signal
 * handler is a plain load (no __tls_get_addr, no allocation).
 */
#include "blame.h"

#include <assert.h>
#include <stddef.h>

#include "plugin.h"
#include "sigfmt.h"

static _Thread_local struct blame_frame *top;

void blame_push(struct blame_frame *f)
{
	f->prev = top;
	/* the handler may run between any two instructions: publish the
	 * frame only once it is complete */
	__atomic_store_n(&top, f, __ATOMIC_RELEASE);
}

void blame_pop(struct blame_frame *f)
{
	assert(top == f);
	__atomic_store_n(&top, f->prev, __ATOMIC_RELEASE);
}

const struct blame_frame *blame_current(void)
{
	return __atomic_load_n(&top, __ATOMIC_ACQUIRE);
}

void blame_describe(struct sbuf *b, const struct blame_frame *f)
{
	sb_str(b, "plugin ");
	sb_str(b, f->plugin->desc.name);
	sb_str(b, " (file ");
	sb_str(b, f->plugin->file);
	sb_str(b, ", generation ");
	sb_u64(b, f->generation);
	sb_str(b, ")");
	if (f->hook) {
		sb_str(b, " serving hook ");
		sb_str(b, f->hook);
	}
	sb_str(b, " (");
	sb_str(b, f->entry);
	sb_str(b, ")");
}
