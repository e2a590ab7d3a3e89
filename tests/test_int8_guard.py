"""int8 with an accuracy guard (issue #21): the metric the guard uses
(ValidationSet.miou) and export.py's --max-drop arguments.

The model is a small random SANet-S on the generated demo data whose val
labels are its own float32 predictions (fp32 mIoU 100). The full guard
(NNCF's accuracy control on such a model) ran over 20 minutes on 2 shared
CPU cores, too long for the suite; docs/deployment.md shows it on the demo
checkpoint."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmseg.apis import inference_model
from mmseg.registry import MODELS
from sanet_mmseg.datasets import make_demo_dataset
from sanet_mmseg.datasets.demo import CLASSES, DEMO_METAINFO
from sanet_mmseg.deploy import load_segmentor
from test_deploy import load_tool
from workflow_utils import CONFIGS

def demo_config(root, work):
    """configs/sanet/sanet-s_demo.py on ``root`` at 128x64."""
    cfg = Config.fromfile(osp.join(CONFIGS, 'sanet-s_demo.py'))
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = root
    for pipeline in (cfg.test_pipeline, cfg.val_dataloader.dataset.pipeline,
                     cfg.test_dataloader.dataset.pipeline):
        for t in pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (128, 64)
    path = str(work / 'config.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def sensitive(tmp_path_factory):
    """(config, checkpoint, noise folder): val labels = fp32 predictions."""
    work = tmp_path_factory.mktemp('guard')
    root = str(work / 'data')
    make_demo_dataset(root, num_train=1, num_val=3, size=(128, 64))
    config = demo_config(root, work)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
    checkpoint = str(work / 'random.pth')
    torch.save(dict(meta=dict(dataset_meta=DEMO_METAINFO),
                    state_dict=model.state_dict()), checkpoint)
    model = load_segmentor(config, checkpoint)
    train_ids = np.array(list(CLASSES), np.uint8)
    val = osp.join(root, 'leftImg8bit', 'val', 'democity')
    for i in range(3):
        image = osp.join(val, f'democity_{i:06d}_000019_leftImg8bit.png')
        pred = inference_model(model, image).pred_sem_seg.data[0].numpy()
        label = image.replace('leftImg8bit/', 'gtFine/').replace(
            '_leftImg8bit.png', '_gtFine_labelTrainIds.png')
        assert osp.isfile(label)
        cv2.imwrite(label, train_ids[pred])
    noise = work / 'noise'
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(noise / f'{i}.png'),
                    rng.integers(0, 256, (64, 128, 3), dtype=np.uint8))
    return config, checkpoint, str(noise)


def test_validation_set_measures_miou(sensitive):
    """The guard's metric: ValidationSet.miou of the float32 model on
    labels that are its own predictions is 100; of a model with another
    classifier bias it is lower."""
    from sanet_mmseg.deploy import ValidationSet, build_predictor
    config, checkpoint, _ = sensitive
    cfg = Config.fromfile(config)
    model = load_segmentor(cfg, checkpoint)
    validation = ValidationSet(cfg, (64, 128))
    assert len(validation) == 3
    fp32 = build_predictor(model, 'openvino', 'fp32', (64, 128))
    assert validation.miou(fp32) > 99.9
    with torch.no_grad():
        model.decode_head.conv_seg.bias[0] += 5
    assert validation.miou(build_predictor(model, 'torch', 'fp32')) < 90


def test_max_drop_arguments(capsys, tmp_path):
    export = load_tool('tools/deployment/export.py')
    with pytest.raises(SystemExit):
        export.parse_args([
            osp.join(CONFIGS, 'sanet-s_demo.py'), 'none', '--backend',
            'onnxruntime', '--precision', 'int8', '--calib', 'config',
            '--max-drop', '1', '--out-dir', str(tmp_path)
        ])
    assert 'onnxruntime takes no export options' in capsys.readouterr().err
