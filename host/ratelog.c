/*
 * ratelog -- see ratelog.h.
 */
#include "ratelog.h"

void ratelog_init(struct ratelog *rl, double rate, double burst)
{
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
	rl->tokens = rl->burst;
	rl->last_ns = 0;
	rl->suppressed = 0;
}

bool ratelog_take(struct ratelog *rl, int64_t now_ns)
{
	if (rl->last_ns && now_ns > rl->last_ns) {
		rl->tokens += (double)(now_ns - rl->last_ns) / 1e9 * rl->rate;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
	}
	if (!rl->last_ns || now_ns > rl->last_ns)
		rl->last_ns = now_ns;
	if (rl->tokens >= 1) {
		rl->tokens -= 1;
		return true;
	}
	rl->suppressed++;
	return false;
}

unsigned ratelog_flush(struct ratelog *rl)
{
	unsigned n = rl->suppressed;

	rl->suppressed = 0;
	return n;
}
