"""A run's messages in a server client's words: the library says how to fix things with
command-line flags and Python keywords (``pass --axes TYX (Python: …)``); a client sets job
options instead (``"axes": "TYX"``)."""

from __future__ import annotations

import re

from scopeml.server.job_options import JobOptions

#: The job options a flag may name (``--tile-size`` → ``tile_size``).
_OPTIONS = frozenset(JobOptions.model_fields) | {"class", "min_size", "seed_threshold", "grow"}
_FLAG = re.compile(r"--([a-z][a-z-]*)")
#: A Python equivalent in parentheses: ``(scene=1)``, ``(channels= in Python)``, also with the
#: flag, beside a settings key a client sets in its file: ``(--recursive, recursive=True)``.
_PYTHON_ALIKE = re.compile(
    r" \((?:[a-z_]+=[^()]*|[^()]* in Python|--[a-z][a-z-]*, [a-z_]+=[^()]*)\)"
)


def in_job_words(text: str, *, analysis: bool = False) -> str:
    """``text`` with its Python advice left out and the flags of job options said as options
    (an ``analysis`` job's: as keys of its settings, which it has instead).

    Examples
    --------
    >>> in_job_words("a.tif: 5 pages read as Z; if they are time points, pass --axes TYX "
    ...              "(Python: sm.open_image(path, axes='TYX'), or segment(path, axes='TYX'))")
    'a.tif: 5 pages read as Z; if they are time points, pass the job option axes TYX'
    >>> in_job_words("pass --axes TYX or --axes CYX")
    'pass the job option axes TYX or CYX'
    >>> in_job_words("choose it with --channels (channels= in Python) from DAPI, GFP")
    'choose it with the job option channels from DAPI, GFP'
    >>> in_job_words("pass --scene 1 (scene=1), or --overwrite (overwrite=True)")
    'pass the job option scene 1, or submit a new job'
    >>> in_job_words("nothing was published; run again with --overwrite (overwrite=True)")
    'nothing was published; submit a new job'
    >>> in_job_words("not the file the run started from; pass --overwrite (overwrite=True) "
    ...              "to start again")  # a job is never overwritten: a new one starts afresh
    'not the file the run started from; submit a new job to start again'
    >>> in_job_words("inputs: {skip_labels: false} in the settings (--no-skip-labels, "
    ...              "skip_labels=False) analyses them")
    'inputs: {skip_labels: false} in the settings analyses them'
    >>> in_job_words("pass --axes TYX or --axes CYX (Python: …)", analysis=True)
    "pass the settings' axes: TYX or CYX"
    >>> in_job_words("records no pixel size: give it (pixel_size:, --pixel-size)", analysis=True)
    "records no pixel size: give it (the settings' pixel_size:)"
    """
    text = _without_python(text)
    text = _PYTHON_ALIKE.sub("", text)
    if analysis:  # a settings key beside its flag: the key once ("(pixel_size:, --pixel-size)")
        text = _KEY_AND_FLAG.sub(_flag_of_key, text)
    for flag, said in _OVERWRITE:  # a job is never overwritten: a new one starts afresh
        text = text.replace(flag, said)
    said = "the settings'" if analysis else "the job option"
    text = _FLAG.sub(lambda flag: _option(flag, analysis), text)
    return re.sub(rf"({said} (\w+):? \S+ or ){said} \2:? ", r"\1", text)  # "axes X or Y"


#: A settings key and then a flag, as the library gives the two ways to set one value.
_KEY_AND_FLAG = re.compile(r"\b([a-z_]+):, (--[a-z][a-z-]*)")


def _flag_of_key(found: re.Match[str]) -> str:
    """The flag alone where it sets the key (said then once, as the settings' key)."""
    return found[2] if found[2][2:].replace("-", "_") == found[1] else found[0]


#: The library's ``--overwrite`` advice, as a client follows it (first match first).
_OVERWRITE = (
    ("run again with --overwrite", "submit a new job"),
    ("start again with --overwrite", "submit a new job to start again"),
    ("pass --overwrite", "submit a new job"),
    ("or --overwrite", "or submit a new job"),
    ("--overwrite", "a new job"),
)


def _option(flag: re.Match[str], analysis: bool) -> str:
    name = flag.group(1).replace("-", "_")
    if analysis:
        from scopeml.analysis.settings import AnalysisSettings

        return f"the settings' {name}:" if name in AnalysisSettings.model_fields else flag[0]
    return f"the job option {name}" if name in _OPTIONS else flag.group(0)


def _without_python(text: str) -> str:
    """``text`` without its ``(Python: …)`` parts, nested parentheses and all."""
    while (start := text.find(" (Python:")) >= 0:
        depth, end = 0, len(text)
        for i in range(start + 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                end = i + 1
                break
        text = text[:start] + text[end:]
    return text
