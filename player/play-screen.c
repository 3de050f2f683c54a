/*
 * podgate-player play's screen: the recording as it is at the position,
 * the status line, the timeline with marker ticks and search hits, the
 * typed lines and the help overlay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "display.h"
#include "index.h"
#include "play.h"
#include "player.h"
#include "trust.h"
#include "when.h"

const char *const play_help[] = {
	"podgate-player play: keys",
	"",
	"  space        pause / resume",
	"  .            step to the next event that changes the screen (while paused)",
	"  + / -  > / < twice / half as fast (1/64x to 64x)",
	"  left/right   back / forward 5 seconds",
	"  PgUp/PgDn    back / forward 60 seconds",
	"  0 ... 9      jump to 0% ... 90%",
	"  g / G        start / end",
	"  ] / [        next / previous marker, command (a typed line ended by Enter)",
	"               or shell prompt (marked by the shell with OSC 133)",
	"  / and ?      search forward / backward (prefix re: for a regular expression)",
	"  n / N        next / previous match",
	"  c            searches ignore / match case (the search shown is redone)",
	"  { / }        idle limit halved / doubled (pauses played at most this long)",
	"  i            show / hide what was typed",
	"  y            copy the screen as text (printed on stdout when play ends)",
	"  v            scrollback: the rows that scrolled off the top, above the screen",
	"               (pauses; up/down, PgUp/PgDn, g/G, / ? n N search, q or Esc back)",
	"  H J K L      pan the view left, down, up, right (also shift+arrows)",
	"               when the recording is larger than this terminal",
	"  h            this help (any key closes it)",
	"  q, Ctrl-C    quit",
	"",
	"The line above the status line is the timeline: played '=', to come '-',",
	"the position '>', markers, typed commands and prompts '|', search hits '*'.",
	"",
	"Search finds text as it was on screen (also lines that scrolled off) and",
	"what was typed, and stops where the match first became visible: inside an",
	"event that goes on to scroll it away, at the end of the matched line.",
	NULL,
};

/* Ask for a search pattern on the status line. */
bool
play_ask_pattern(struct play *p, bool forward, char *buf, size_t cap, const char **pat,
    bool *regex)
{
	*pat = buf;
	*regex = p->regex;
	if (display_prompt(p->disp, forward ? "/" : "?", buf, cap) < 0 || buf[0] == '\0')
		return false;
	if (strncmp(buf, "re:", 3) == 0) {
		*regex = true;
		*pat += 3;
	}
	return true;
}

/* One part of the status line: its text and how much it matters (0 most). */
struct play_part {
	char text[200];
	int prio;
};

/*
 * Format the status line, each part as wide as it needs and in this order:
 * mode and position / duration, the recording's state and signer, the
 * match shown, speed, user@target, the viewport when panning, a message,
 * and where help is. When they do not all fit in width, the parts that
 * matter least are left out first: never the position or the verdict.
 */
static void
play_status(struct play *p, char *buf, size_t cap, int width)
{
	const struct rec_header *h = &p->ix->file->header;
	struct play_part parts[9];
	char pos[32], dur[32], *user, *target;
	const struct rec_event *ev;
	const char *mode;
	int cols, rows, vc, vr, drop;
	size_t n = 0, i, total, len;

	memset(parts, 0, sizeof parts);
	when_format_offset(p->pos, pos, sizeof pos);
	when_format_offset(p->ix->duration_ns, dur, sizeof dur);
	if (index_cursor_peek(p->cur, &ev) == 0)
		mode = p->ix->live == NULL ? "END" : p->loading && !p->follow ? "LOADING" : "LIVE";
	else
		mode = p->paused ? "PAUSED" : "PLAYING";
	snprintf(parts[n].text, sizeof parts[n].text, "%s %s / %s", mode, pos, dur);
	parts[n++].prio = 0;
	snprintf(parts[n].text, sizeof parts[n].text, "%s%s%s", p->state,
	    p->integrity[0] != '\0' ? "  " : "", p->integrity);
	parts[n++].prio = 0;
	if (p->has_search)
		snprintf(parts[n].text, sizeof parts[n].text, "match %zu/%zu%s",
		    p->nmatches > 0 ? p->match + 1 : 0, p->nmatches, p->more_matches ? "+" : "");
	parts[n++].prio = 1;
	snprintf(parts[n].text, sizeof parts[n].text, "%gx", p->speed);
	parts[n++].prio = 3;
	user = player_escape_str(h->user, "-");
	target = player_escape_str(h->target, "-");
	snprintf(parts[n].text, sizeof parts[n].text, "%.80s@%.80s", user != NULL ? user : "-",
	    target != NULL ? target : "-");
	free(user);
	free(target);
	parts[n++].prio = 5;
	term_size(p->cur->term, &cols, &rows);
	display_size(p->disp, &vc, &vr);
	if (cols > vc || rows > vr - (vr >= 8 ? 2 : 1))
		snprintf(parts[n].text, sizeof parts[n].text, "view %dx%d+%d+%d", cols, rows,
		    p->pan_col, p->pan_row);
	parts[n++].prio = 4;
	snprintf(parts[n].text, sizeof parts[n].text, "%s", p->message);
	parts[n++].prio = 2;
	snprintf(parts[n].text, sizeof parts[n].text, "h:help");
	parts[n++].prio = 6;
	/* Leave out the least important parts until the rest fits. */
	for (drop = 6; drop > 0; drop--) {
		for (i = 0, total = 0; i < n; i++)
			if (parts[i].text[0] != '\0' && parts[i].prio <= drop)
				total += 2 + strlen(parts[i].text);
		if (width <= 0 || total <= (size_t)width)
			break;
	}
	buf[0] = '\0';
	for (i = 0, len = 0; i < n; i++) {
		if (parts[i].text[0] == '\0' || parts[i].prio > drop || len >= cap)
			continue;
		len += (size_t)snprintf(buf + len, cap - len, "%s%s", i == 0 ? " " : "  ",
		    parts[i].text);
	}
}

/* The typed lines up to the position, and the line being typed. */
static size_t
play_typed(struct play *p, const char **lines, char *partial, size_t cap)
{
	size_t n = 0, i, hi = p->ix->ninputs, lo = 0, first;

	/* Inputs ended before the cursor's next event. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->ix->inputs[mid].seq < p->cur->seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	first = lo > PLAY_OVERLAY_LINES - 1 ? lo - (PLAY_OVERLAY_LINES - 1) : 0;
	for (i = first; i < lo; i++)
		lines[n++] = p->ix->inputs[i].text;
	if (p->cur->typed.len > 0) {
		size_t len = p->cur->typed.len < cap - 1 ? p->cur->typed.len : cap - 1;

		memcpy(partial, p->cur->typed.line, len);
		partial[len] = '\0';
		lines[n++] = partial;
	}
	return n;
}

/*
 * The timeline, width columns: played '=' and to come '-' up to the
 * position '>', broker markers and typed commands '|', search hits '*'.
 */
static void
play_timeline(struct play *p, char *buf, int width)
{
	const struct index *ix = p->ix;
	uint64_t dur = ix->duration_ns;
	int head, k;
	size_t i;

	if (width < 2) {
		buf[0] = '\0';
		return;
	}
#define PLAY_COL(t) (dur == 0 ? width - 1 : (int)((double)(t) / (double)dur * (width - 1)))
	head = PLAY_COL(p->pos > dur ? dur : p->pos);
	for (k = 0; k < width; k++)
		buf[k] = k < head ? '=' : '-';
	for (i = 0; i < ix->nmarkers; i++)
		buf[PLAY_COL(ix->markers[i].time_ns)] = '|';
	for (i = 0; i < ix->ninputs; i++)
		if (ix->inputs[i].len > 0)
			buf[PLAY_COL(ix->inputs[i].time_ns)] = '|';
	for (i = 0; i < ix->nprompts; i++)
		buf[PLAY_COL(ix->prompts[i].time_ns)] = '|';
	for (i = 0; p->has_search && i < p->nmatches; i++) {
		const struct index_match *m = &p->matches[i];

		if (m->kind == INDEX_INPUT && m->input < ix->ninputs)
			buf[PLAY_COL(ix->inputs[m->input].time_ns)] = '*';
		else if (m->kind != INDEX_INPUT)
			buf[PLAY_COL(m->time_ns)] = '*';
	}
#undef PLAY_COL
	buf[head] = '>';
	buf[width] = '\0';
}

/* Draw the current state. */
void
play_draw(struct play *p)
{
	struct display_frame f;
	const char *lines[PLAY_OVERLAY_LINES + 1];
	char status[1024], partial[512], *timeline;
	int vc, vr;

	memset(&f, 0, sizeof f);
	display_size(p->disp, &vc, &vr);
	play_status(p, status, sizeof status, vc);
	if ((timeline = malloc((size_t)(vc > 0 ? vc : 0) + 1)) != NULL)
		play_timeline(p, timeline, vc);
	f.timeline = timeline;
	f.term = p->cur->term;
	f.pan_row = p->pan_row;
	f.pan_col = p->pan_col;
	f.status = status;
	f.highlight = p->has_search && p->match_shown ? &p->search : NULL;
	if (p->overlay) {
		f.noverlay = play_typed(p, lines, partial, sizeof partial);
		f.overlay = lines;
	}
	if (p->help)
		f.help = play_help;
	display_draw(p->disp, &f);
	free(timeline);
	p->pan_row = f.pan_row;
	p->pan_col = f.pan_col;
}
