"""``xmrank warmup``: compile xmrank's kernels ahead of time, into the user cache folder."""

from __future__ import annotations

import click

from ._io import fail, user_errors


@click.command("warmup")
@click.option("--check", is_flag=True,
              help="Compile nothing: exit 0 when every kernel is compiled and cached, else 1 with one line.")
@user_errors
def warmup_cmd(check):
    """Compile every numba kernel of xmrank once, on tiny inputs, and cache it.

    The first Jaccard computation on a machine otherwise compiles them (10-30 s,
    once); run this while building a container image so that the image ships
    warm. The cache is the user cache folder (`~/.cache/xmrank/numba` on Linux;
    XMRANK_CACHE_DIR=DIR moves it, NUMBA_CACHE_DIR is honoured). numba reads a
    cache only from a folder it may write to: in an image, run the warm-up as
    the user the container runs as. A cache entry is specific to the xmrank
    version, the Python version and the CPU model: a machine with another CPU
    compiles again, once. A cache folder that others can write to, or that
    belongs to another user, is never loaded from (numba unpickles its index
    files): build it as the user who runs xmrank.

    It also measures the constants of knn='ann''s cost model on this machine
    (a few tens of ms) and caches them beside the kernels; --check reports
    them. XMRANK_COST_MODEL=fixed keeps the fixed constants.
    """
    from xmrank import _jit, _warmup

    refused = _jit.cache_refusal()
    if refused:
        fail(f"the compiled-kernel cache is not used: {refused}, and numba runs the code "
             "its index files hold; make it yours and private (chown, chmod -R go-w) or set XMRANK_CACHE_DIR "
             "to a folder only you can write.")
    folder = _warmup._caching()
    if folder is None:
        fail(f"no writable cache folder for compiled kernels (tried {_jit.kernel_cache_dir() or 'the user cache folder: HOME is unknown'}): "
             "they would be compiled again in every process; set XMRANK_CACHE_DIR to a writable folder.")
    ready = _warmup.kernels_ready(on_disk=True)
    if check:
        if not ready:
            fail(f"xmrank's kernels are not all compiled for this machine yet (cache {folder}); run `xmrank warmup`.")
        click.echo(f"xmrank's kernels are compiled and cached in {folder}")
        model = _warmup.cost_constants(measure=False)
        click.echo(_warmup.describe_constants(model) if model is not None else
                   "knn='ann' cost model: not measured on this machine yet (the first knn='ann' search or "
                   "`xmrank warmup` measures it, in a few tens of ms)")
        return
    if not ready:
        click.echo(f"compiling xmrank's kernels once (cached in {folder}) ...", err=True)
    seconds = _warmup.compile_kernels()
    if not _warmup.kernels_ready(on_disk=True):  # written nowhere after all (a folder that refused the files)
        fail(f"compiled xmrank's kernels in {seconds:.1f}s but could not cache them in {folder}.")
    count = len(_warmup.kernels())
    if ready:
        click.echo(f"xmrank's kernels were already compiled; loaded {count} from {folder} in {seconds:.1f}s")
    else:
        click.echo(f"compiled xmrank's kernels in {seconds:.1f}s, cached {count} in {folder}")
    click.echo(_warmup.describe_constants(_warmup.cost_constants(measure=True)))
