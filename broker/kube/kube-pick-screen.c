/*
 * The picker's screen: drawn with plain escape sequences on the alternate
 * screen, redrawn on SIGWINCH; the keys that move, filter and pick.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "kube/kube-pick-int.h"
#include "kube/kube-pick.h"
#include "kube/kube.h"

static volatile sig_atomic_t kp_winch;

/* SIGWINCH: redraw at the next turn. */
void
kp_winch_cb(int sig)
{
	(void)sig;
	kp_winch = 1;
}

/* Write all of buf to the terminal. */
static void
kp_write(const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Append s in exactly w columns: cut with '~', or padded with blanks. */
static void
kp_cell(struct buf *o, const char *s, size_t w)
{
	size_t len = strlen(s);

	if (w == 0)
		return;
	if (len > w)
		buf_printf(o, "%.*s~", (int)(w - 1), s);
	else
		buf_printf(o, "%s%*s", s, (int)(w - len), "");
}

/* Put the terminal back as it was and leave the alternate screen. */
void
kp_restore(struct kp *k)
{
	static const char leave[] = "\033[?25h\033[?1049l";

	if (!k->raw)
		return;
	kp_write(leave, sizeof leave - 1);
	tcsetattr(STDIN_FILENO, TCSADRAIN, &k->saved);
	k->raw = false;
}

/* Raw mode (no echo, no signals from keys) on the alternate screen. */
void
kp_enter(struct kp *k)
{
	static const char enter[] = "\033[?1049h\033[?25l\033[H\033[2J";
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &k->saved) == 0) {
		t = k->saved;
		t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
		    IXON);
		t.c_oflag &= ~(tcflag_t)OPOST;
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
		t.c_cflag |= CS8;
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0)
			k->raw = true;
	}
	kp_write(enter, sizeof enter - 1);
}

/* Read the terminal's size (80x24 when it has none). */
void
kp_size(struct kp *k)
{
	struct winsize ws;

	k->cols = 80;
	k->rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		k->cols = ws.ws_col;
		k->rows = ws.ws_row;
	}
}

/* Keep only printable ASCII of s, in place. */
void
kp_printable(char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
	}
}

/* Add a failure to the message line. */
void
kp_note(struct kp *k, const char *fmt, ...)
{
	size_t len = strlen(k->msg);
	va_list ap;

	if (len > 0 && len + 2 < sizeof k->msg) {
		memcpy(k->msg + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(k->msg + len, sizeof k->msg - len, fmt, ap);
	va_end(ap);
	kp_printable(k->msg);
}

/* Show a one-line status while pods are being listed. */
void
kp_status(struct kp *k, const char *fmt, ...)
{
	struct buf o = { 0 };
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	buf_printf(&o, "\033[H\033[2J");
	kp_cell(&o, line, k->cols > 1 ? k->cols - 1 : 1);
	if (!o.oom)
		kp_write(o.data, o.len);
	buf_free(&o);
}

/* ---- the screen ---- */

/* Recompute which entries pass the filter; keep the selection in range. */
void
kp_refilter(struct kp *k)
{
	char needle[KP_FILTER_MAX];
	size_t i;

	for (i = 0; i <= k->nfilter && i < sizeof needle; i++)
		needle[i] = (char)(k->filter[i] >= 'A' && k->filter[i] <= 'Z' ?
		    k->filter[i] - 'A' + 'a' : k->filter[i]);
	k->nshown = 0;
	for (i = 0; i < k->n; i++) {
		if (k->nfilter == 0 || strstr(k->v[i].key, needle) != NULL)
			k->shown[k->nshown++] = i;
	}
	if (k->sel >= k->nshown)
		k->sel = k->nshown > 0 ? k->nshown - 1 : 0;
}

/* How many list rows the screen has. */
static size_t
kp_list_rows(const struct kp *k)
{
	return k->rows > 4 ? k->rows - 4 : 1;
}

/* An age like kubectl's: 45s, 12m, 3h, 5d. */
static void
kp_age(time_t created, char *buf, size_t len)
{
	time_t now = time(NULL);
	long long d;

	if (created == 0 || now < created) {
		snprintf(buf, len, "%s", created == 0 ? "?" : "0s");
		return;
	}
	d = (long long)(now - created);
	if (d < 120)
		snprintf(buf, len, "%llds", d);
	else if (d < 2 * 3600)
		snprintf(buf, len, "%lldm", d / 60);
	else if (d < 2 * 86400)
		snprintf(buf, len, "%lldh", d / 3600);
	else
		snprintf(buf, len, "%lldd", d / 86400);
}

/* Draw the whole screen. */
static void
kp_draw(struct kp *k)
{
	struct buf o = { 0 };
	size_t w = k->cols > 1 ? k->cols - 1 : 1;	/* never write the last column */
	size_t rows = kp_list_rows(k), i, wns, wname, wcont, wage = 5, wst, rest;
	char age[32], title[128];

	wst = w >= 70 ? 17 : w >= 50 ? 12 : 8;
	rest = w > 2 + 4 + wage + wst + 6 ? w - 2 - 4 - wage - wst : 6;
	wns = rest * 27 / 100;
	wcont = rest * 25 / 100;
	wname = rest - wns - wcont;
	if (k->sel < k->top)
		k->top = k->sel;
	if (k->sel >= k->top + rows)
		k->top = k->sel - rows + 1;
	if (k->top + rows > k->nshown)
		k->top = k->nshown > rows ? k->nshown - rows : 0;

	buf_printf(&o, "\033[H\033[1m");
	snprintf(title, sizeof title, "podgate: pick a target (%zu of %zu)", k->nshown, k->n);
	kp_cell(&o, title, w);
	buf_printf(&o, "\033[0m\033[K\r\n\033[1m  ");
	kp_cell(&o, "NAMESPACE", wns);
	buf_printf(&o, " ");
	kp_cell(&o, "NAME", wname);
	buf_printf(&o, " ");
	kp_cell(&o, "CONTAINERS", wcont);
	buf_printf(&o, " ");
	kp_cell(&o, "AGE", wage);
	buf_printf(&o, " ");
	kp_cell(&o, "STATUS", wst);
	buf_printf(&o, "\033[0m\033[K");
	for (i = 0; i < rows; i++) {
		size_t idx = k->top + i;
		const struct kp_entry *e;

		buf_printf(&o, "\r\n");
		if (idx >= k->nshown) {
			if (idx == 0)
				buf_printf(&o, "  %s", k->n == 0 ? "(no targets)" : "(nothing matches)");
			buf_printf(&o, "\033[K");
			continue;
		}
		e = &k->v[k->shown[idx]];
		if (idx == k->sel)
			buf_printf(&o, "\033[7m> ");
		else
			buf_printf(&o, "  ");
		kp_age(e->created, age, sizeof age);
		kp_cell(&o, e->where, wns);
		buf_printf(&o, " ");
		kp_cell(&o, e->name, wname);
		buf_printf(&o, " ");
		kp_cell(&o, e->containers, wcont);
		buf_printf(&o, " ");
		kp_cell(&o, strcmp(e->target, "local") == 0 ? "" : age, wage);
		buf_printf(&o, " ");
		kp_cell(&o, e->status, wst);
		buf_printf(&o, "\033[0m\033[K");
	}
	buf_printf(&o, "\r\n");
	kp_cell(&o, k->msg[0] != '\0' ? k->msg :
	    "Up/Down PgUp/PgDn move, type to filter, Enter picks, q or ^C quits", w);
	buf_printf(&o, "\033[K\r\nfilter: %.*s\033[K", (int)(w > 9 ? w - 9 : 0), k->filter);
	if (!o.oom)
		kp_write(o.data, o.len);
	buf_free(&o);
}

/*
 * Pick the selected entry: write it to fd 3, then leave the screen and
 * exit. The line goes first: the session stops passing keys on once it
 * sees it, so what the user types next reaches the target.
 */
static void __attribute__((noreturn))
kp_pick(struct kp *k)
{
	const char *t = k->v[k->shown[k->sel]].target;
	char line[KUBE_NAME_MAX * 2 + 8];
	int n;

	n = snprintf(line, sizeof line, "%s\n", t);
	if (n <= 0 || (size_t)n >= sizeof line || write(KP_RESULT_FD, line, (size_t)n) != n) {
		kp_restore(k);
		_exit(KUBE_PICK_CANCEL);
	}
	kp_restore(k);
	_exit(KUBE_PICK_OK);
}

/* Move the selection by d rows. */
static void
kp_move(struct kp *k, long d)
{
	long s = (long)k->sel + d;

	if (s < 0 || k->nshown == 0)
		s = 0;
	else if ((size_t)s >= k->nshown)
		s = (long)k->nshown - 1;
	k->sel = (size_t)s;
}

/*
 * Handle the keys in buf (len bytes). Escape sequences: arrows (CSI or
 * SS3), PgUp/PgDn, Home/End. Returns false to quit without a pick.
 */
static bool
kp_keys(struct kp *k, const unsigned char *buf, size_t len)
{
	long page = (long)kp_list_rows(k);
	size_t i = 0;

	while (i < len) {
		unsigned char c = buf[i++];

		if (c == 0x1b) {
			if (i >= len) {
				/* Escape alone: clear the filter, or quit. */
				if (k->nfilter == 0)
					return false;
				k->nfilter = 0;
				k->filter[0] = '\0';
				kp_refilter(k);
				continue;
			}
			if (buf[i] != '[' && buf[i] != 'O')
				continue;
			i++;
			/* CSI params then a final byte */
			{
				char param[8] = "";
				size_t np = 0;

				while (i < len && buf[i] >= 0x30 && buf[i] <= 0x3f) {
					if (np + 1 < sizeof param)
						param[np++] = (char)buf[i];
					i++;
				}
				param[np] = '\0';
				if (i >= len)
					break;
				c = buf[i++];
				if (c == 'A')
					kp_move(k, -1);
				else if (c == 'B')
					kp_move(k, 1);
				else if (c == 'H')
					k->sel = 0;
				else if (c == 'F')
					kp_move(k, (long)k->nshown);
				else if (c == '~' && strcmp(param, "5") == 0)
					kp_move(k, -page);
				else if (c == '~' && strcmp(param, "6") == 0)
					kp_move(k, page);
				else if (c == '~' && (strcmp(param, "1") == 0 || strcmp(param, "7") == 0))
					k->sel = 0;
				else if (c == '~' && (strcmp(param, "4") == 0 || strcmp(param, "8") == 0))
					kp_move(k, (long)k->nshown);
			}
			continue;
		}
		if (c == '\r' || c == '\n') {
			if (k->nshown > 0)
				kp_pick(k);
			continue;
		}
		if (c == 0x03 || c == 0x04)
			return false;
		if (c == 'q' && k->nfilter == 0)
			return false;
		if (c == 0x0e)			/* ^N */
			kp_move(k, 1);
		else if (c == 0x10)		/* ^P */
			kp_move(k, -1);
		else if (c == 0x7f || c == 0x08) {
			if (k->nfilter > 0) {
				k->filter[--k->nfilter] = '\0';
				kp_refilter(k);
			}
		} else if (c == 0x15) {		/* ^U */
			k->nfilter = 0;
			k->filter[0] = '\0';
			kp_refilter(k);
		} else if (c > 0x20 && c < 0x7f && k->nfilter + 1 < sizeof k->filter) {
			k->filter[k->nfilter++] = (char)c;
			k->filter[k->nfilter] = '\0';
			k->sel = 0;
			kp_refilter(k);
		}
	}
	return true;
}

/* Read keys until a pick (exits) or a cancel (returns). */
void
kp_loop(struct kp *k)
{
	unsigned char buf[256];
	struct pollfd pf;
	ssize_t n;
	size_t len;

	kp_draw(k);
	for (;;) {
		if (kp_winch) {
			kp_winch = 0;
			kp_size(k);
			kp_draw(k);
		}
		n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;		/* the terminal is gone */
		len = (size_t)n;
		/* A sequence split across reads: wait a moment for its rest. */
		while (buf[len - 1] == 0x1b || (len >= 2 && buf[len - 2] == 0x1b) ||
		    (len >= 3 && buf[len - 3] == 0x1b && buf[len - 2] == '[' &&
		    buf[len - 1] >= '0' && buf[len - 1] <= '9')) {
			pf.fd = STDIN_FILENO;
			pf.events = POLLIN;
			if (len >= sizeof buf || poll(&pf, 1, 50) <= 0)
				break;
			if ((n = read(STDIN_FILENO, buf + len, sizeof buf - len)) <= 0)
				break;
			len += (size_t)n;
		}
		if (!kp_keys(k, buf, len))
			return;
		kp_draw(k);
	}
}
