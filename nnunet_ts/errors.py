"""The exception and warning types for bad user input, and the command's exit statuses.

Commands catch :class:`InputError` at the top level and print its message as a single line
(``nnunet_ts COMMAND: error: ...``) with exit status :data:`EXIT_BAD_INPUT`, so every message must
say what is wrong, which file, and how to fix it. :class:`InputWarning` is printed as one
``nnunet_ts COMMAND: warning: ...`` line: the input was used, but not as given.
"""

EXIT_OK = 0
EXIT_FAILURE = 1      # an unexpected error (a bug, or a failing library): a traceback is printed
EXIT_USAGE = 2        # wrong command line (argparse's own status)
EXIT_BAD_INPUT = 3    # the command line was fine, the data was not (InputError)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); rerunning resumes where the command stopped

EXIT_STATUS_HELP = (f"exit status:\n"
                    f"  {EXIT_OK}    done\n"
                    f"  {EXIT_FAILURE}    unexpected failure (a traceback follows)\n"
                    f"  {EXIT_USAGE}    wrong command line\n"
                    f"  {EXIT_BAD_INPUT}    bad input data: one 'error:' line names the file and the fix\n"
                    f"  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)")


class InputError(ValueError):
    """Bad input from the user: wrong geometry, missing file, corrupt data, wrong id, ..."""


class InputWarning(UserWarning):
    """Input used in a way the user may not expect (e.g. DICOM files grouped without UIDs)."""
