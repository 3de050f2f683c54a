/*
 * The write path: output bytes on their way to libvterm.
 *
 * libvterm keeps modes such as the scroll region and origin mode to itself,
 * so a small scanner watches the output for the few sequences a snapshot
 * must reproduce and the fast path must know (fast.c). It also notices
 * when the alternate screen is about to be entered, to keep the main
 * screen (which libvterm hides) for snapshots, and when a screen is about
 * to be cleared, to report its rows first.
 */
#include <string.h>

#include "term-int.h"

/* Forget the modes the scanner follows (RIS; libvterm 0.1.4 ignores DECSTR). */
void
term_scan_reset_modes(struct term *t)
{
	t->top = t->bottom = 0;
	t->origin = t->noautowrap = t->insert = t->g0_graphics = false;
	t->newline = t->lrmm = false;
}

/* Forget the character sets followed (RIS). */
void
term_scan_reset_charsets(struct term *t)
{
	t->g0_other = false;
	t->gl = 0;
}

/* What the scanner asks for before a sequence takes effect. */
enum scan_act {
	SCAN_ACT_NONE,
	SCAN_ACT_ENTER_ALT,	/* keep the main screen */
	SCAN_ACT_FLUSH,		/* report the rows: the screen is about to go */
	SCAN_ACT_CANCEL,	/* keep the sequence from libvterm */
};

/* The scanner saw a complete CSI sequence ending in final. */
static enum scan_act
term_scan_csi(struct term *t, char final)
{
	enum scan_act act = SCAN_ACT_NONE;
	int i;

	/*
	 * REP repeats the character printed last. libvterm 0.1.4 loops for
	 * ever on one before any, and writes through a NULL pointer after a
	 * wide character at the right margin; and what it takes as printed
	 * last can differ from what this scanner saw (strings it does not
	 * know). So no REP reaches it: after an ASCII character the scanner
	 * saw last, the repeats are written as characters (term_scan_rep);
	 * after anything else they are not shown.
	 */
	if (final == 'b' && t->sc_lead == 0 && t->sc_inter == 0) {
		t->rep = 0;
		if (t->printed && t->last_ascii)
			t->rep = t->sc_nparam > 0 && t->sc_param[0] > 0 ? t->sc_param[0] : 1;
		return SCAN_ACT_CANCEL;
	}
	if (t->sc_lead == '?' && t->sc_inter == 0 && (final == 'h' || final == 'l')) {
		for (i = 0; i < t->sc_nparam; i++) {
			switch (t->sc_param[i]) {
			case 6:
				t->origin = final == 'h';
				break;
			case 7:
				t->noautowrap = final == 'l';
				break;
			case 69:
				t->lrmm = final == 'h';
				break;
			case 47: case 1047: case 1049:
				/* Whether libvterm is on the alternate screen is
				 * checked once the bytes before this one reached it.
				 * Its buffer is made now, before libvterm sees the
				 * final byte (it erases the screen on entering it). */
				if (final == 'h')
					vterm_screen_enable_altscreen(t->vs, 1);
				act = final == 'h' ? SCAN_ACT_ENTER_ALT : SCAN_ACT_FLUSH;
				break;
			default:
				break;
			}
		}
	} else if (t->sc_lead == 0 && t->sc_inter == 0 && (final == 'h' || final == 'l')) {
		for (i = 0; i < t->sc_nparam; i++) {
			if (t->sc_param[i] == 4)
				t->insert = final == 'h';
			else if (t->sc_param[i] == 20)
				t->newline = final == 'h';
		}
	} else if (t->sc_lead == 0 && t->sc_inter == 0 && final == 'r') {
		unsigned top = t->sc_nparam > 0 ? t->sc_param[0] : 0;
		unsigned bot = t->sc_nparam > 1 ? t->sc_param[1] : 0;

		if (top == 0)
			top = 1;
		if (bot == 0 || bot > (unsigned)t->rows)
			bot = (unsigned)t->rows;
		/*
		 * A terminal ignores a region of fewer than two rows; libvterm
		 * 0.1.4 takes it, and one that starts below the last row after a
		 * resize makes it copy a negative size: keep it from libvterm.
		 */
		if (top >= bot)
			return SCAN_ACT_CANCEL;
		t->top = (int)top - 1;
		t->bottom = (int)bot;
		if (t->top == 0 && t->bottom == t->rows)
			t->top = t->bottom = 0;
	} else if (t->sc_lead == 0 && t->sc_inter == 0 && final == 'J' && t->sc_nparam > 0 &&
	    (t->sc_param[0] == 2 || t->sc_param[0] == 3)) {
		act = SCAN_ACT_FLUSH;
	}
	return act;
}

/* Length of the incomplete UTF-8 sequence at the end of p[0..n), or 0. */
static size_t
term_utf8_tail(const char *p, size_t n)
{
	size_t i, k, need;
	unsigned char c;

	for (k = 1; k <= 3 && k <= n; k++) {
		c = (unsigned char)p[n - k];
		if ((c & 0xc0) == 0x80)
			continue;
		if (c < 0xc0)
			return 0;
		need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		for (i = n - k + 1; i < n; i++)
			if (((unsigned char)p[i] & 0xc0) != 0x80)
				return 0;
		return k < need ? k : 0;
	}
	return 0;
}

/* A C0 control the scanner follows: the shifts between G0 and G1. */
static void
term_scan_c0(struct term *t, unsigned char c)
{
	if (c == 0x0e)
		t->gl = 1;	/* SO */
	else if (c == 0x0f)
		t->gl = 0;	/* SI */
}

/*
 * The UTF-8 character at p, a byte from 0x80 on in ground-state text:
 * whether libvterm's decoder is left holding part of one (its pending bytes
 * outlive ASCII text and controls, and come out as U+FFFD later), and the
 * bytes to step over.
 */
static size_t
term_scan_utf8(struct term *t, const char *p, const char *end)
{
	unsigned char c = (unsigned char)*p;
	size_t need, i;

	need = c >= 0xfc ? 5 : c >= 0xf8 ? 4 : c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
	if (need == 0 || c >= 0xfe || (size_t)(end - p) <= need) {
		t->u8_unsure = true;
		return 1;
	}
	for (i = 1; i <= need; i++) {
		if (((unsigned char)p[i] & 0xc0) != 0x80) {
			t->u8_unsure = true;
			return i;
		}
	}
	t->u8_unsure = false;	/* a whole character: the decoder starts afresh */
	return need + 1;
}

/* Write a cancelled REP's repeats as characters (at most a screenful). */
static void
term_scan_rep(struct term *t)
{
	char run[256];
	size_t n, left;

	left = t->rep;
	if (left > (size_t)t->cols * (size_t)t->rows)
		left = (size_t)t->cols * (size_t)t->rows;
	t->rep = 0;
	memset(run, t->last_char, sizeof run);
	while (left > 0) {
		n = left < sizeof run ? left : sizeof run;
		term_vt_write(t->vt, run, n);
		left -= n;
	}
}

/*
 * Follow ground-state text [p, end) for the scanner (the shifts) and give
 * its long plain runs to the fast path.
 */
static void
term_scan_text(struct term *t, const char **from, const char *p, const char *end)
{
	const char *run = p, *q;
	int lfs = 0;

	/* Whether libvterm has printed a character yet, and the last one ASCII (for REP). */
	for (q = p; !t->printed && q < end; q++)
		if (*q >= 0x20 && *q < 0x7f)
			t->printed = true;
	for (q = end; q > p; q--) {
		unsigned char c = (unsigned char)q[-1];

		if (c >= 0x80) {
			t->last_ascii = false;
			break;
		}
		if (c >= 0x20 && c < 0x7f) {
			t->last_ascii = true;
			t->last_char = (char)c;
			break;
		}
	}
	for (; p < end; p++) {
		unsigned char c;

		if ((p = term_find_special(p, end)) == end)
			break;
		c = (unsigned char)*p;
		if (c == '\r')
			continue;
		if (c == '\n') {
			lfs++;
			continue;
		}
		if (lfs > t->rows + 1)
			term_fast_run(t, from, run, p);
		if (c < 0x20)
			term_scan_c0(t, c);
		else if (c >= 0x80)
			p += term_scan_utf8(t, p, end) - 1;
		run = p + 1;
		lfs = 0;
	}
	if (lfs > t->rows + 1)
		term_fast_run(t, from, run, end);
}

/*
 * Feed bytes to libvterm, following the sequences snapshots need. Before
 * the final byte of a sequence that enters the alternate screen, the bytes
 * so far go to libvterm and the main screen is kept.
 */
void
term_write_bytes(struct term *t, const void *buf, size_t len)
{
	const char *p = buf, *from = buf, *end = p + len, *e;
	enum scan_act act;
	unsigned char c;
	size_t tail;
	char u[8];

	/* Complete a character split at the end of the last write. */
	if (t->nu8 > 0) {
		memcpy(u, t->u8, t->nu8);
		tail = t->nu8;
		t->nu8 = 0;
		while (p < end && tail < 4 && ((unsigned char)*p & 0xc0) == 0x80)
			u[tail++] = *p++;
		if (p == end && term_utf8_tail(u, tail) == tail) {
			memcpy(t->u8, u, tail);	/* still incomplete */
			t->nu8 = tail;
			return;
		}
		term_vt_write(t->vt, u, tail);
		(void)term_scan_utf8(t, u, u + tail);
		from = p;
	}

	while (p < end) {
		if (t->sc == SCAN_GROUND) {
			e = memchr(p, 0x1b, (size_t)(end - p));
			term_scan_text(t, &from, p, e != NULL ? e : end);
			if (e == NULL)
				break;
			p = e + 1;
			t->sc = SCAN_ESC;
			continue;
		}
		c = (unsigned char)*p;
		if (c >= 0x80 && t->sc != SCAN_STRING)
			t->u8_unsure = true;	/* what libvterm makes of it is unclear */
		switch (t->sc) {
		case SCAN_ESC:
			/* libvterm passes over DEL and bytes from 0x80 on here. */
			if (c >= 0x7f)
				break;
			if (c < 0x20 && c != 0x18 && c != 0x1a && c != 0x1b) {
				term_scan_c0(t, c);	/* done inside the sequence */
				break;
			}
			t->sc = SCAN_GROUND;
			if (c == '[') {
				t->sc = SCAN_CSI;
				t->sc_lead = 0;
				t->sc_inter = 0;
				t->sc_nparam = 0;
				t->sc_seps = 0;
				memset(t->sc_param, 0, sizeof t->sc_param);
			} else if (c == '(') {
				t->sc = SCAN_CHARSET;
			} else if (c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X') {
				t->sc = SCAN_STRING;
				t->sc_str_esc = false;
			} else if (c >= 0x20 && c <= 0x2f) {
				t->sc = SCAN_ESC_INTER;
			} else if (c == 'c') {
				term_scan_reset_modes(t);
				term_scan_reset_charsets(t);
			} else if (c == 'n' || c == 'o') {
				t->gl = c == 'n' ? 2 : 3;	/* LS2, LS3 */
			} else if (c == 0x1b) {
				t->sc = SCAN_ESC;
			}
			break;
		case SCAN_CHARSET:
		case SCAN_ESC_INTER:
			/* An escape sequence ends with a byte from 0x30 to 0x7e. */
			if (c >= 0x7f)
				break;
			if (c < 0x20 && c != 0x18 && c != 0x1a && c != 0x1b) {
				term_scan_c0(t, c);
			} else if (c >= 0x20 && c <= 0x2f) {
				t->sc = SCAN_ESC_INTER;
			} else if (c == 0x1b) {
				t->sc = SCAN_ESC;
			} else if (c == '[' || c == ']' || c == 'P' || c == '_' || c == '^' ||
			    c == 'X') {
				/* libvterm starts these whatever the intermediates. */
				t->sc = SCAN_ESC;
				continue;
			} else {
				if (t->sc == SCAN_CHARSET && c >= 0x30 && c <= 0x7e) {
					t->g0_graphics = c == '0';
					t->g0_other = c != 'B';
				}
				t->sc = SCAN_GROUND;
			}
			break;
		case SCAN_STRING:
			if (t->sc_str_esc) {
				t->sc_str_esc = false;
				if (c == '\\') {
					t->sc = SCAN_GROUND;
					break;
				}
				t->sc = SCAN_ESC;
				continue;	/* the ESC started a new sequence */
			}
			if (c == 0x07)
				t->sc = SCAN_GROUND;
			else if (c == 0x1b)
				t->sc_str_esc = true;
			break;
		case SCAN_CSI:
			/*
			 * As libvterm parses it: leader bytes, parameters,
			 * intermediates, the final byte. A byte out of that
			 * order, or from 0x80 on, ends it unfinished.
			 */
			if ((c >= 0x30 && c <= 0x3f && t->sc_inter != 0) ||
			    (c >= 0x3c && c <= 0x3f && t->sc_nparam > 0) || c >= 0x80) {
				t->sc = SCAN_GROUND;
				break;
			}
			/* Past TERM_VT_MAX_SEPS separators, parameters skip libvterm. */
			if ((c == ';' || c == ':') && t->sc_seps <= TERM_VT_MAX_SEPS)
				t->sc_seps++;
			if (t->sc_seps > TERM_VT_MAX_SEPS && ((c >= '0' && c <= '9') || c == ';' ||
			    c == ':')) {
				if (p > from)
					term_vt_write(t->vt, from, (size_t)(p - from));
				from = p + 1;
			}
			if (c >= '0' && c <= '9') {
				if (t->sc_nparam == 0)
					t->sc_nparam = 1;
				if (t->sc_nparam <= SCAN_MAX_PARAMS &&
				    t->sc_param[t->sc_nparam - 1] < 100000)
					t->sc_param[t->sc_nparam - 1] =
					    t->sc_param[t->sc_nparam - 1] * 10 + (c - '0');
			} else if (c == ';' || c == ':') {
				if (t->sc_nparam == 0)
					t->sc_nparam = 1;
				if (t->sc_nparam < SCAN_MAX_PARAMS)
					t->sc_nparam++;
			} else if (c >= 0x3c && c <= 0x3f) {
				t->sc_lead = (char)c;
			} else if (c >= 0x20 && c <= 0x2f) {
				t->sc_inter = (char)c;
			} else if (c >= 0x40 && c <= 0x7e) {
				t->sc = SCAN_GROUND;
				if (t->sc_nparam > SCAN_MAX_PARAMS)
					t->sc_nparam = SCAN_MAX_PARAMS;
				if ((act = term_scan_csi(t, (char)c)) != SCAN_ACT_NONE) {
					if (p > from)
						term_vt_write(t->vt, from, (size_t)(p - from));
					from = p;
					if (act == SCAN_ACT_CANCEL) {
						term_vt_write(t->vt, "\030", 1);	/* CAN */
						term_scan_rep(t);
						from = p + 1;
					} else if (act == SCAN_ACT_FLUSH)
						term_flush_rows(t);
					else if (!t->alt)
						term_keep_main(t);
				}
			} else if (c == 0x1b) {
				t->sc = SCAN_ESC;
			} else if (c == 0x18 || c == 0x1a) {
				t->sc = SCAN_GROUND;
			} else if (c < 0x20) {
				term_scan_c0(t, c);
			}
			break;
		default:
			t->sc = SCAN_GROUND;
			break;
		}
		p++;
	}
	/* libvterm does not keep a character split between writes: we do. */
	if (t->sc == SCAN_GROUND && (tail = term_utf8_tail(from, (size_t)(end - from))) > 0) {
		end -= tail;
		memcpy(t->u8, end, tail);
		t->nu8 = tail;
	}
	if (end > from)
		term_vt_write(t->vt, from, (size_t)(end - from));
	t->known.len = t->known_pos = 0;
}

/* Feed output bytes, LF as CR LF with onlcr on. */
void
term_write(struct term *t, const void *buf, size_t len)
{
	const char *p = buf, *end = p + len, *lf;
	char piece[2 * TERM_VT_CHUNK];
	size_t n;

	if (!t->onlcr) {
		term_write_bytes(t, buf, len);
		return;
	}
	/* Translate in pieces, so that runs of lines still reach the fast path. */
	while (p < end) {
		n = 0;
		while (p < end && n + 2 < sizeof piece) {
			if ((lf = memchr(p, '\n', (size_t)(end - p))) == NULL)
				lf = end;
			if ((size_t)(lf - p) > sizeof piece - 2 - n)
				lf = p + (sizeof piece - 2 - n);
			memcpy(piece + n, p, (size_t)(lf - p));
			n += (size_t)(lf - p);
			p = lf;
			if (p < end && *p == '\n') {
				piece[n++] = '\r';
				piece[n++] = '\n';
				p++;
			}
		}
		term_write_bytes(t, piece, n);
	}
}

/* Give LF the CR a PTY would have added. */
void
term_set_onlcr(struct term *t, bool on)
{
	t->onlcr = on;
}
