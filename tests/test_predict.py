"""tools/predict.py and its engine (sanet_mmseg.predict, sanet_mmseg.sources)
on real files: a folder tree of images of several sizes and formats (gray,
RGBA, a corrupt and an empty one), a short generated video (whole and cut
short), a list file; labels compared with inference_model's, resume after
a SIGKILL, the summary, memory over many inputs."""
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from test_deploy import load_tool
from tool_runner import run_script
from workflow_utils import CONFIGS, REPO

# labels agreeing with inference_model's where the model runs BN-folded
# (tools/predict.py with a checkpoint): float32 rounding moves near-ties
MIN_AGREEMENT = 0.999


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """One inference thread: on a loaded machine of few cores, OpenMP's
    threads waiting for each other cost more than tiny inputs gain."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    """The demo config (7 Cityscapes classes) resizing to 128x64, and a
    checkpoint of SANet-S with random weights and the config's classes."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from sanet_mmseg.datasets import config_dataset_meta
    init_default_scope('mmseg')
    tmp = tmp_path_factory.mktemp('model')
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_demo.py'))
    for t in cfg.test_dataloader.dataset.pipeline:
        if t['type'] == 'Resize':
            t['scale'] = (128, 64)
    cfg.test_pipeline = cfg.test_dataloader.dataset.pipeline
    config = str(tmp / 'small.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    checkpoint = str(tmp / 'small.pth')
    torch.save(dict(meta=dict(dataset_meta=config_dataset_meta(cfg)),
                    state_dict=model.state_dict()), checkpoint)
    return config, checkpoint


@pytest.fixture(scope='module')
def model(model_files):
    from mmseg.apis import init_model
    return init_model(*model_files, device='cpu')


def write_video(path, frames, fps=10):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), fps,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()


@pytest.fixture(scope='module')
def tree(cityscapes_mini, tmp_path_factory):
    """A folder tree of real frames (generated where ../shared is absent)
    at several sizes and formats, a gray and an RGBA image, a corrupt and
    an empty file; a 5-frame video and a copy cut short; a list file."""
    root = tmp_path_factory.mktemp('inputs')
    folder = osp.join(cityscapes_mini, 'leftImg8bit', 'val')
    frames = sorted(osp.join(r, f) for r, _, fs in os.walk(folder)
                    for f in fs)
    real = [mmcv.imread(f) for f in frames]
    images = root / 'images'
    (images / 'city' / 'deeper').mkdir(parents=True)
    mmcv.imwrite(mmcv.imresize(real[0], (128, 64)), str(images / 'a.png'))
    mmcv.imwrite(mmcv.imresize(real[1], (96, 48)),
                 str(images / 'city' / 'b.jpg'))
    mmcv.imwrite(mmcv.imresize(real[0], (150, 70)),
                 str(images / 'city' / 'b.png'))  # b.jpg's stem
    mmcv.imwrite(mmcv.imresize(real[1], (47, 33)),
                 str(images / 'city' / 'deeper' / 'c.bmp'))
    Image.fromarray(mmcv.imresize(real[0], (80, 40))[..., 0]).save(
        images / 'gray.png')
    rgba = np.dstack([mmcv.imresize(real[1], (64, 32))[..., ::-1],
                      np.full((32, 64), 128, np.uint8)])
    Image.fromarray(rgba, 'RGBA').save(images / 'rgba.png')
    good = (images / 'a.png').read_bytes()
    (images / 'corrupt.png').write_bytes(good[:len(good) // 3])
    (images / 'empty.jpg').write_bytes(b'')
    videos = root / 'videos'
    videos.mkdir()
    write_video(str(videos / 'clip.avi'),
                [mmcv.imresize(real[i % 2], (128, 64)) for i in range(5)])
    data = (videos / 'clip.avi').read_bytes()
    (videos / 'cut.avi').write_bytes(data[:len(data) // 2])
    (root / 'list.txt').write_text(
        '# a list file\nimages/a.png\n\nvideos/clip.avi\nimages/nothing.png\n')
    return root


def labels_of(out_dir, name):
    return mmcv.imread(osp.join(out_dir, 'labels', name + '.png'),
                       'unchanged')


def test_predict_outputs_equal_inference_model(tree, model_files, model,
                                               tmp_path, capsys):
    """A folder, a video cut short and a missing path at once: every image
    readable is segmented with inference_model's labels (the model
    BN-folded, so up to float32 near-ties), labelIds are Cityscapes', the
    painted image is MMSeg's blend, names mirror the inputs; the bad
    inputs are listed with their reasons and the exit status is 1."""
    from mmseg.apis import inference_model
    config, checkpoint = model_files
    predict = load_tool('tools/predict.py')
    out = str(tmp_path / 'out')
    summary = str(tmp_path / 'summary.json')
    code = predict.main([
        str(tree / 'images'), str(tree / 'videos'), str(tree / 'missing'),
        config, checkpoint, '--out-dir', out, '--labels', '--label-ids',
        '--painted', '--summary', summary, '--no-progress', '--threads', '1'])
    printed = capsys.readouterr()
    assert code == 1
    files = {'a': 'a.png', 'city/b.jpg': 'city/b.jpg',
             'city/b.png': 'city/b.png', 'city/deeper/c': 'city/deeper/c.bmp',
             'gray': 'gray.png', 'rgba': 'rgba.png'}
    names = list(files)
    found = sorted(
        osp.relpath(osp.join(r, f), osp.join(out, 'labels'))
        for r, _, fs in os.walk(osp.join(out, 'labels', 'images'))
        for f in fs)
    assert found == sorted(f'images/{n}.png' for n in names)
    from cityscapesscripts.helpers.labels import name2label
    classes = model.dataset_meta['classes']
    palette = np.array(model.dataset_meta['palette'], np.float64)[:, ::-1]
    seen = set()
    for name in names:
        path = str(tree / 'images' / files[name])
        img = mmcv.imread(path)
        expected = inference_model(model, img).pred_sem_seg.data[0].numpy()
        labels = labels_of(out, 'images/' + name)
        assert labels.shape == img.shape[:2] == expected.shape
        assert (labels == expected).mean() >= MIN_AGREEMENT, name
        seen |= set(np.unique(labels).tolist())
        ids = mmcv.imread(osp.join(out, 'labelIds', 'images', name + '.png'),
                          'unchanged')
        table = np.array([name2label[c].id for c in classes])
        np.testing.assert_array_equal(ids, table[labels])
        painted = mmcv.imread(osp.join(out, 'painted', 'images',
                                       name + '.png'))
        blend = (img * 0.5 + palette[labels] * 0.5).astype(np.uint8)
        np.testing.assert_array_equal(painted, blend)
    assert len(seen) > 1  # several classes to tell apart
    # the whole video: a label PNG per frame and the overlay video
    cap = cv2.VideoCapture(str(tree / 'videos' / 'clip.avi'))
    frames = [cap.read()[1] for _ in range(5)]
    cap.release()
    for i, frame in enumerate(frames):
        expected = inference_model(model, frame).pred_sem_seg.data[0].numpy()
        labels = labels_of(out, f'videos/clip/{i:06d}')
        assert (labels == expected).mean() >= MIN_AGREEMENT, i
    assert sorted(os.listdir(osp.join(out, 'labels', 'videos', 'clip'))) \
        == [f'{i:06d}.png' for i in range(5)]
    cap = cv2.VideoCapture(osp.join(out, 'painted', 'videos', 'clip.mp4'))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    assert cap.read()[1].shape == (64, 128, 3)
    cap.release()
    # the video cut short: listed, nothing of it kept, no temporary file
    assert not osp.exists(osp.join(out, 'labels', 'videos', 'cut'))
    assert not osp.exists(osp.join(out, 'painted', 'videos', 'cut.mp4'))
    leftovers = [f for _, _, fs in os.walk(out) for f in fs
                 if '.tmp' in f]
    assert not leftovers
    err = printed.err
    assert '4 inputs left out' in err
    assert f'{tree}/images/corrupt.png: cannot read image' in err
    assert f'{tree}/images/empty.jpg: empty file' in err
    assert f'{tree}/videos/cut.avi: ended after 2 of 5 frames' in err
    assert f'{tree}/missing: no file or folder' in err
    # the summary: sizes, frames, class shares of the labels written
    with open(summary) as f:
        report = json.load(f)
    rows = {r['name']: r for r in report['inputs']}
    assert sorted(rows) == sorted(['images/' + n for n in names] +
                                  ['videos/clip'])
    labels = labels_of(out, 'images/city/deeper/c')
    row = rows['images/city/deeper/c']
    assert (row['width'], row['height'], row['frames']) == (47, 33, 1)
    counts = np.bincount(labels.ravel(), minlength=len(classes))
    assert row['shares'] == pytest.approx(
        {classes[i]: n / labels.size for i, n in enumerate(counts) if n},
        abs=1e-6)
    assert rows['videos/clip']['frames'] == 5
    assert sum(rows['videos/clip']['shares'].values()) == pytest.approx(1)
    assert {p['path'] for p in report['skipped']} == {
        str(tree / 'images' / 'corrupt.png'),
        str(tree / 'images' / 'empty.jpg'), str(tree / 'videos' / 'cut.avi'),
        str(tree / 'missing')}


def test_segmenter_equals_inference_model(tree, model):
    """The engine with the model as trained (not BN-folded) gives
    inference_model's labels exactly, on every readable image; beyond the
    memory bound it resizes the argmax instead."""
    from mmseg.apis import inference_model
    from sanet_mmseg.deploy import TorchPredictor
    from sanet_mmseg.predict import Segmenter
    meta = dict(model.dataset_meta, align_corners=model.align_corners)
    segmenter = Segmenter(model.cfg, TorchPredictor(model, 'fp32'), meta)
    lean = Segmenter(model.cfg, TorchPredictor(model, 'fp32'), meta,
                     max_logits_bytes=0)
    for root, _, files in os.walk(tree / 'images'):
        for name in files:
            if name in ('corrupt.png', 'empty.jpg'):
                continue
            img = mmcv.imread(osp.join(root, name))
            expected = inference_model(model, img).pred_sem_seg.data[0]
            np.testing.assert_array_equal(segmenter(img), expected.numpy())
            labels = lean(img)
            assert labels.shape == img.shape[:2]
            assert (labels == expected.numpy()).mean() > 0.8


def test_streams_give_the_same_outputs(tree, model_files, tmp_path, capsys):
    """Two images inferred at once (tools/predict.py --streams 2, the
    default for PyTorch on a CPU with 2 threads) write the same files as
    one at a time, a video's frames in order; each inference thread had
    half the threads, and torch's setting is as before after the run."""
    predict = load_tool('tools/predict.py')
    config, checkpoint = model_files
    seen = []
    from sanet_mmseg.predict import Segmenter, default_streams
    logits = Segmenter.logits

    def spy(self, inputs):
        seen.append(torch.get_num_threads())
        return logits(self, inputs)

    outputs = {}
    torch.set_num_threads(2)
    try:
        for streams in ('1', '2'):
            out = str(tmp_path / streams)
            Segmenter.logits = spy
            try:
                code = predict.main([
                    str(tree / 'images' / 'a.png'),
                    str(tree / 'images' / 'city'),
                    str(tree / 'videos' / 'clip.avi'), config, checkpoint,
                    '--out-dir', out, '--labels', '--painted',
                    '--no-progress', '--streams', streams])
            finally:
                Segmenter.logits = logits
            assert code == 0
            assert torch.get_num_threads() == 2
            assert f'2 threads, {streams} streams' in capsys.readouterr().out
            outputs[streams] = {
                osp.relpath(osp.join(r, f), out):
                open(osp.join(r, f), 'rb').read()
                for r, _, fs in os.walk(out) for f in fs
                if not f.endswith('.mp4')}
    finally:
        torch.set_num_threads(1)
    assert seen == [2] * 9 + [1] * 9  # 4 images, 5 frames, each run
    assert outputs['1'] == outputs['2']
    assert [f'labels/videos/clip/{i:06d}.png' for i in range(5)] == [
        f for f in sorted(outputs['2']) if 'clip' in f]
    model = type('P', (), dict(backend='torch', device=torch.device('cpu')))
    assert default_streams(model) == 1  # one thread here


def test_sources(tree, tmp_path):
    """Globs, list files, several sources at once: each file once, named
    by its path relative to the sources' common folder; files differing
    in suffix only keep it; list entries that are not there are problems
    and so are sources that give nothing."""
    from sanet_mmseg.sources import collect
    inputs, problems = collect([str(tree / 'images' / '**' / '*.png')])
    assert [i.name for i in inputs] == [
        'a', 'city/b', 'corrupt', 'gray', 'rgba']
    assert not problems
    inputs, problems = collect([
        str(tree / 'list.txt'), str(tree / 'images' / 'a.png'),
        str(tree / 'videos' / 'clip.avi'), '7', str(tmp_path / 'none*.png')])
    assert [(i.kind, i.name) for i in inputs] == [
        ('image', 'images/a'), ('video', 'videos/clip'),
        ('camera', 'camera7')]
    assert problems[0].path == 'images/nothing.png'
    assert 'listed in' in problems[0].reason
    assert 'no image or video matches' in problems[1].reason
    inputs, _ = collect([str(tree / 'images' / 'city')])
    assert [i.name for i in inputs] == ['b.jpg', 'b.png', 'deeper/c']


def test_camera_strict_and_model_check(tree, model_files, tmp_path,
                                       capsys):
    """A camera that cannot be opened is listed; --strict stops at the
    first bad input with exit status 1; a MODEL that is no checkpoint is
    refused at the argument."""
    predict = load_tool('tools/predict.py')
    config, checkpoint = model_files
    out = str(tmp_path / 'out')
    assert predict.main([
        '99', str(tree / 'images' / 'a.png'), config, checkpoint,
        '--out-dir', out, '--no-progress', '--threads', '1']) == 1
    assert '99: cannot open camera 99' in capsys.readouterr().err
    assert os.listdir(out) == ['labels']  # by default
    assert osp.isfile(osp.join(out, 'labels', 'a.png'))
    assert predict.main([
        str(tree / 'images' / 'corrupt.png'), str(tree / 'images' / 'a.png'),
        config, checkpoint, '--out-dir', str(tmp_path / 'strict'),
        '--no-progress', '--strict', '--threads', '1']) == 1
    assert 'stopped (--strict)' in capsys.readouterr().err
    assert not osp.exists(osp.join(tmp_path, 'strict', 'labels', 'a.png'))
    # MODEL is checked as the other tools check it, before anything runs
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    with pytest.raises(SystemExit) as e:
        predict.main([str(tree / 'images' / 'a.png'), config, str(text),
                      '--out-dir', str(tmp_path / 'never')])
    assert e.value.code == 2
    assert f'not a checkpoint: {text}' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'never')


def test_resume_after_sigkill(model_files, tmp_path):
    """A run killed (SIGKILL) while writing leaves only complete PNGs;
    --resume leaves out the inputs done and finishes the others, whose
    outputs are those of the model; a CSV summary lists them."""
    from sanet_mmseg.predict import Segmenter, open_model
    config, checkpoint = model_files
    folder = tmp_path / 'many'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        mmcv.imwrite(rng.integers(0, 255, (64, 128, 3), np.uint8),
                     str(folder / f'{i:03d}.png'))
    out = str(tmp_path / 'out')
    command = [sys.executable, 'tools/predict.py', str(folder), config,
               checkpoint, '--out-dir', out, '--no-progress', '--threads',
               '1', '--labels', '--painted']
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    labels_dir = osp.join(out, 'labels')
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if osp.isdir(labels_dir) and len(os.listdir(labels_dir)) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    complete = set.intersection(*(
        {f for f in os.listdir(osp.join(out, k)) if not f.startswith('.')}
        for k in ('labels', 'painted')))
    assert 3 <= len(complete) < 30, 'killed too late to test anything'
    for kind in ('labels', 'painted'):
        for name in os.listdir(osp.join(out, kind)):
            if not name.startswith('.'):  # every PNG there is complete
                assert mmcv.imread(osp.join(out, kind, name)) is not None
    summary = str(tmp_path / 'summary.csv')
    resumed = run_script(*command[1:], '--resume', '--summary', summary,
                         cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'{len(complete)} done before (--resume)' in resumed.stdout
    cfg = Config.fromfile(config)
    segmenter = Segmenter(cfg, *open_model(checkpoint, cfg))
    for kind in ('labels', 'painted'):
        names = sorted(os.listdir(osp.join(out, kind)))
        assert names == [f'{i:03d}.png' for i in range(30)]  # no temps
    for name in names:
        img = mmcv.imread(str(folder / name))
        labels = segmenter(img)
        np.testing.assert_array_equal(
            mmcv.imread(osp.join(out, 'labels', name), 'unchanged'), labels)
        np.testing.assert_array_equal(
            mmcv.imread(osp.join(out, 'painted', name)),
            segmenter.paint(img, labels, 0.5))
    with open(summary) as f:
        rows = f.read().splitlines()
    assert rows[0].startswith('input,name,kind,status,reason,width,height')
    statuses = [r.split(',')[3] for r in rows[1:]]
    assert statuses.count('resumed') == len(complete)
    assert statuses.count('done') == 30 - len(complete)


def rss_mb():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) / 1024 for line in f
                    if line.startswith('VmRSS:'))


def test_memory_flat_over_many_inputs(model_files, tmp_path):
    """Over 250 small images RSS stays within 10 MB of what it was after
    50 (nothing kept per input besides the summary's rows; measured: less
    than 1 MB more), so a leak of 40 kB or more per input fails."""
    from sanet_mmseg.predict import Outputs, Segmenter, open_model, predict
    from sanet_mmseg.sources import collect
    config, checkpoint = model_files
    folder = tmp_path / 'small'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(250):
        cv2.imwrite(str(folder / f'{i:03d}.png'),
                    rng.integers(0, 255, (32, 64, 3), np.uint8))
    cfg = Config.fromfile(config)
    segmenter = Segmenter(cfg, *open_model(checkpoint, cfg))
    inputs, _ = collect([str(folder)])
    predict(inputs[:50], segmenter, Outputs(str(tmp_path / 'warm'),
                                            ['labels']), progress=False)
    before = rss_mb()
    report = predict(inputs, segmenter, Outputs(str(tmp_path / 'all'),
                                                ['labels']), progress=False)
    after = rss_mb()
    assert len(report.rows) == 250
    print(f'RSS {before:.1f} MB after 50 images, {after:.1f} MB after 250 '
          'more')
    assert after - before < 10, (before, after)


def test_benchmark_predict(model_files, tree, tmp_path, capsys):
    """tools/analysis_tools/benchmark_predict.py prints the CPU's features,
    every row and the ratios of the README's table, on the folder read
    --copies times."""
    config, checkpoint = model_files
    folder = tmp_path / 'three'
    folder.mkdir()
    for name in ('a.png', 'gray.png', 'rgba.png'):
        (folder / name).write_bytes((tree / 'images' / name).read_bytes())
    bench = load_tool('tools/analysis_tools/benchmark_predict.py')
    bench.main([config, str(folder), '--checkpoint', checkpoint,
                '--seconds', '0.05', '--repeat', '1', '--rounds', '1',
                '--threads', '1', '--copies', '2'])
    printed = capsys.readouterr().out
    assert 'CPU: ' in printed and f'6 images in {folder} x 2' in printed
    for row in ('model only (plain), benchmark.py',
                'model only (torch:fp32), benchmark.py',
                'predict (torch:fp32), labels + painted',
                'MMSegInferencer, pred + vis',
                'predict (plain), labels + painted',
                'predict (torch:fp32), labels only'):
        assert re.search(re.escape(row) + r' +\d+\.\d{3}', printed), row
    assert re.search(r'predict \(torch:fp32\), labels only / benchmark.py '
                     r'\(torch:fp32\): \d+\.\d\d', printed)
    assert re.search(r'predict \(torch:fp32\) / benchmark.py \(torch:fp32\):'
                     r' \d+\.\d\d', printed)
    assert re.search(r'predict \(torch:fp32\) / MMSegInferencer: \d+\.\d\d',
                     printed)
