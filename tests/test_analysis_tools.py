"""The paper's analysis tools on a frame (real where ../shared has them,
else generated) with a small randomly initialised checkpoint: they run and
draw sensible pictures."""
import glob
import os.path as osp
import sys

import cv2
import mmcv
import numpy as np
import pytest
from PIL import Image

import sanet_mmseg  # noqa: F401
from mmseg.apis import init_model
from mmseg.datasets import CityscapesDataset
from sanet_mmseg.analysis import receptive_fields
from sanet_mmseg.datasets import multi_class_boundary
from tool_runner import run_script
from workflow_utils import CONFIGS, REPO, random_checkpoint, run

CONFIG = osp.join(CONFIGS, 'sanet-s_demo.py')  # tests at 512x256
PALETTE = np.array(CityscapesDataset.METAINFO['palette'])


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return random_checkpoint(
        CONFIG, str(tmp_path_factory.mktemp('ckpt') / 'random.pth'))


@pytest.fixture(scope='module')
def frame(cityscapes_mini, tmp_path_factory):
    src = sorted(glob.glob(osp.join(cityscapes_mini, 'leftImg8bit', 'val',
                                    '*', '*.png')))[0]
    path = str(tmp_path_factory.mktemp('frame') / 'frame.png')
    mmcv.imwrite(mmcv.imresize(mmcv.imread(src), (512, 256)), path)
    return path


def palette_share(picture):
    """Share of pixels whose colour is a palette colour."""
    colours = picture.reshape(-1, 3)[:, None, :]
    return (colours == PALETTE[None]).all(-1).any(-1).mean()


@pytest.fixture(scope='module')
def heads(checkpoint, frame):
    """The three heads' logits of the checkpoint on the frame, each resized
    to the frame, on the input MMSeg's inference_model feeds the model."""
    import torch
    import torch.nn.functional as F
    from mmseg.apis.utils import _preprare_data
    model = init_model(CONFIG, checkpoint, device='cpu')
    data, _ = _preprare_data(frame, model)
    inputs = model.data_preprocessor(data, False)['inputs']
    with torch.no_grad():
        outputs = model.decode_head.forward_all(model.extract_feat(inputs))
    return {
        name: F.interpolate(out, (256, 512), mode='bilinear',
                            align_corners=model.align_corners)[0].numpy()
        for name, out in zip(('aux', 'main', 'boundary'), outputs)
    }


@pytest.mark.parametrize('head', ['main', 'aux', 'boundary'])
def test_segmentation_image(checkpoint, frame, heads, tmp_path, head):
    """The palette colours of the head's argmax; the boundary head's
    probability as a JET colour map (0 blue, 1 red)."""
    flag = [] if head == 'main' else [f'--{head}']
    run('tools/visualization/segmentation_image.py', CONFIG, checkpoint,
        frame, '--out-dir', str(tmp_path), *flag)
    picture = mmcv.imread(str(tmp_path / f'frame_{head}.png'),
                          channel_order='rgb')
    assert picture.shape == (256, 512, 3)
    assert picture.std() > 0  # not blank
    if head == 'boundary':
        assert palette_share(picture) < 0.5  # a colour map, not labels
        prob = 1 / (1 + np.exp(-heads['boundary'][0]))
        expected = cv2.applyColorMap((prob * 255).astype(np.uint8),
                                     cv2.COLORMAP_JET)[..., ::-1]
    else:
        assert palette_share(picture) == 1.0
        expected = PALETTE[heads[head].argmax(0)]
    same = (picture == expected).all(-1).mean()
    assert same > 0.999, same
    # the heads differ: a swap of the heads cannot pass
    assert (heads['main'].argmax(0) != heads['aux'].argmax(0)).mean() > 0.1


def test_segmentation_image_folder_overlay(checkpoint, frame, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    for i in range(2):
        mmcv.imwrite(mmcv.imread(frame), str(folder / f'f{i}.png'))
    run('tools/visualization/segmentation_image.py', CONFIG, checkpoint,
        str(folder), '--out-dir', str(tmp_path / 'out'), '--overlay', '0.5')
    pictures = sorted(glob.glob(str(tmp_path / 'out' / '*.png')))
    assert len(pictures) == 2
    assert palette_share(mmcv.imread(pictures[0], channel_order='rgb')) < 0.5


def test_segmentation_image_errors(checkpoint, tmp_path):
    (tmp_path / 'bad.png').write_bytes(b'not a png')
    for img, message in ((str(tmp_path / 'missing'), 'no file or folder'),
                         (str(tmp_path / 'bad.png'), 'cannot read image')):
        out = run_script('tools/visualization/segmentation_image.py',
                         CONFIG, checkpoint, img, '--out-dir',
                         str(tmp_path / 'o'), cwd=REPO)
        assert out.returncode != 0 and message in out.stderr, out.stderr[-500:]


def test_heat_map(checkpoint, frame, tmp_path):
    """The Grad-CAM map of the class asked for, which differs from
    another class's (on the frame at half size, to save time)."""
    import torch
    from mmengine.visualization import Visualizer
    from sanet_mmseg.analysis import grad_cam
    image = mmcv.imrescale(mmcv.imread(frame), 0.5)
    mmcv.imwrite(image, str(tmp_path / 'half.png'))
    out = run('tools/visualization/heat_map.py', CONFIG, checkpoint,
              str(tmp_path / 'half.png'), '--category', 'building',
              '--out-dir', str(tmp_path))
    picture = mmcv.imread(str(tmp_path / 'half_building_gradcam.png'),
                          channel_order='rgb')
    assert picture.shape == (128, 256, 3) and picture.std() > 0
    assert 'saved' in out
    model = init_model(CONFIG, checkpoint, device='cpu')
    classes = model.dataset_meta['classes']
    building, road = (grad_cam(model, image, classes.index(name))
                      for name in ('building', 'road'))
    assert np.abs(building - road).mean() > 0.05
    expected = Visualizer.draw_featmap(
        torch.from_numpy(building)[None], mmcv.bgr2rgb(image), alpha=0.5)
    assert np.abs(picture.astype(int) - expected).mean() < 1


def test_heat_map_unknown_class_and_layer(checkpoint, frame, tmp_path):
    out = run_script('tools/visualization/heat_map.py', CONFIG, checkpoint,
                     frame, '--category', 'unicorn', '--out-dir',
                     str(tmp_path), cwd=REPO)
    assert out.returncode != 0
    assert "unknown category 'unicorn'" in out.stderr
    assert 'road, sidewalk' in out.stderr
    from sanet_mmseg.analysis import grad_cam
    model = init_model(CONFIG, checkpoint, device='cpu')
    with pytest.raises(KeyError, match="no module 'nope'.*backbone"):
        grad_cam(model, mmcv.imread(frame), 0, layer='nope')


def test_missing_grad_cam_names_the_extra(checkpoint, frame, monkeypatch):
    from sanet_mmseg.analysis import grad_cam
    model = init_model(CONFIG, checkpoint, device='cpu')
    monkeypatch.setitem(sys.modules, 'pytorch_grad_cam', None)
    with pytest.raises(ImportError, match=r"pytorch_grad_cam.*\[analysis\]"):
        grad_cam(model, mmcv.imread(frame), 0)


def test_receptive_fields_grow():
    model = init_model(CONFIG, device='cpu')
    fields = receptive_fields(model, (512, 512))
    rf = {name: f['rf'][0] for name, f in fields.items()}
    # stem: two stride-2 3x3 convs: 3 + 2 * 2 = 7
    assert rf['backbone.stem'] == 7
    assert rf['backbone.layer1'] < rf['backbone.layer2'] < \
        rf['backbone.layer4'] < rf['backbone.layer5']
    assert rf['backbone.spatial_path1'] > rf['backbone.layer3']
    assert rf['backbone.layer6'] == 512  # the whole input


def test_receptive_field_tool(frame, tmp_path):
    out = run('tools/analysis_tools/receptive_field.py', CONFIG,
              '--input-size', '256', '256', '--img', frame, '--out-dir',
              str(tmp_path))
    assert 'backbone.stem' in out and '7 x 7' in out
    assert 'effective RF of the decoder centre pixel' in out
    for name in ('receptive_fields', 'receptive_field_growth',
                 'effective_receptive_field'):
        picture = mmcv.imread(str(tmp_path / f'{name}.png'))
        assert picture.std() > 0


def test_multi_class_boundary():
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 13
    label[0, 0] = 255
    edges = multi_class_boundary(label, width=3)
    assert (edges[:, 3] == 13).all()  # road pixels bordering car
    assert (edges[:, 4] == 0).all()  # car pixels bordering road
    assert (edges[:, :3] == 255).all() and (edges[:, 5:] == 255).all()


def test_multi_class_boundary_tool(any_cityscapes_mini, tmp_path):
    label = sorted(glob.glob(osp.join(any_cityscapes_mini, 'gtFine', 'val',
                                      '*', '*labelTrainIds.png')))[0]
    small = np.array(Image.open(label))[::4, ::4]
    folder = tmp_path / 'in' / 'city'
    folder.mkdir(parents=True)
    Image.fromarray(small).save(folder / 'f_labelTrainIds.png')
    Image.fromarray(small).save(folder / 'f_color.png')  # not a label map
    run('tools/analysis_tools/multi_class_boundary.py', str(tmp_path / 'in'),
        '--out-dir', str(tmp_path / 'out'))
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'f_labelTrainIds_boundary.png'
    ]
    picture = mmcv.imread(str(tmp_path / 'out' /
                              'f_labelTrainIds_boundary.png'),
                          channel_order='rgb')
    assert picture.shape == (*small.shape, 3)
    drawn = picture.reshape(-1, 3)[picture.reshape(-1, 3).any(1)]
    assert 0 < len(drawn) < picture.shape[0] * picture.shape[1] / 2
    assert palette_share(drawn.reshape(1, -1, 3)) == 1.0


def test_multi_class_boundary_tool_refuses_other_ids(tmp_path):
    label = np.full((16, 16), 7, np.uint8)
    label[:, 8:] = 26  # labelIds, not trainIds
    path = tmp_path / 'f_labelIds.png'
    Image.fromarray(label).save(path)
    out = run_script('tools/analysis_tools/multi_class_boundary.py',
                     str(path), '--out-dir', str(tmp_path / 'out'), cwd=REPO)
    assert out.returncode != 0
    assert f'{path} holds class ids [26]' in out.stderr, out.stderr[-500:]


def test_import_leaves_mmpretrain_out():
    """MMPretrain is imported by the in1k configs only."""
    code = ('import sys, sanet_mmseg, sanet_mmseg.analysis; '
            "assert 'mmpretrain' not in sys.modules, 'imported'; "
            'from mmengine.config import Config; '
            "Config.fromfile('configs/sanet/sanet-m_in1k.py'); "
            'from mmpretrain.registry import MODELS; '
            "assert MODELS.get('SANetClsBackbone'), 'not registered'")
    run('-c', code)


def test_grad_cam_refuses_a_class_the_head_lacks(checkpoint, frame):
    """The random checkpoint names the 19 Cityscapes classes, the demo head
    scores 7: class 13 (car) is an error that says so, not a crash."""
    from sanet_mmseg.analysis import grad_cam
    model = init_model(CONFIG, checkpoint, device='cpu')
    with pytest.raises(ValueError, match='class index 13, but the model '
                       'scores 7 classes'):
        grad_cam(model, mmcv.imread(frame), 13)
