/*
 * main.c - the `tierkv-trace` command: reads a trace written with
 * TKV_TRACE=FILE and prints its per-stage summary, or converts it to Chrome
 * Trace Event JSON for Perfetto (ui.perfetto.dev) and chrome://tracing.
 * All the work is in trace_read.c / trace_report.c; this is argument
 * handling and exit codes (0 ok, 1 unreadable or corrupt file, 2 usage).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tierkv.h"
#include "tools/trace/trace_read.h"

static const char usage[] =
	"usage: tierkv-trace FILE              per-stage and per-thread summary\n"
	"       tierkv-trace FILE --json OUT   Chrome Trace Event JSON (Perfetto);\n"
	"                                      OUT '-' is standard output\n"
	"Record a trace by running the program with TKV_TRACE=FILE.\n";

static int write_json(const tkv__trace_file *f, const char *path)
{
	bool to_stdout = strcmp(path, "-") == 0;
	FILE *out = to_stdout ? stdout : fopen(path, "w");
	if (!out) {
		fprintf(stderr, "tierkv-trace: %s: %s\n", path, strerror(errno));
		return 1;
	}
	int rc = tkv__trace_write_json(f, out);
	if ((to_stdout ? fflush(out) : fclose(out)) != 0 && !rc)
		rc = -EIO;
	if (rc) {
		fprintf(stderr, "tierkv-trace: %s: write failed\n", path);
		return 1;
	}
	if (!to_stdout)
		fprintf(stderr, "tierkv-trace: wrote %zu events on %zu threads to %s\n",
			f->n_events, f->n_threads, path);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(usage, stdout);
		return 0;
	}
	if (!(argc == 2 || (argc == 4 && !strcmp(argv[2], "--json")))) {
		fputs(usage, stderr);
		return 2;
	}
	tkv__trace_file *f;
	if (tkv__trace_load(argv[1], &f) != 0) {
		fprintf(stderr, "tierkv-trace: %s\n", tkv_last_error());
		return 1;
	}
	int rc;
	if (argc == 4)
		rc = write_json(f, argv[3]);
	else
		rc = tkv__trace_print_summary(f, stdout) ? 1 : 0;
	tkv__trace_file_free(f);
	return rc;
}
