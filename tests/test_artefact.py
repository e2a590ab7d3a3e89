"""Opening an artefact: deploy.json checked in one place (types, ranges,
classes/palette/output channels, files inside the folder), the checks of a
config against an artefact, and the checkpoint check (issue #21, cases 1-4).
"""
import json
import os
import os.path as osp
import pickle
import shutil

import pytest
from mmengine.config import Config

from sanet_mmseg.deploy import (ArtefactError, MismatchError, check_config,
                                export_artefact, load_predictor,
                                load_segmentor, read_meta)
from test_deploy import CONFIG, random_segmentor
from test_deploy_backends import META

SHAPE = (32, 64)


@pytest.fixture(scope='module')
def artefact(tmp_path_factory):
    """An ONNX Runtime fp32 artefact of a random SANet-S for 32x64."""
    out = str(tmp_path_factory.mktemp('artefact') / 'onnx')
    return export_artefact(random_segmentor('s'), out, 'onnxruntime', 'fp32',
                           SHAPE, META)


@pytest.fixture
def copy(artefact, tmp_path):
    """A copy of the artefact and its meta data, to spoil."""
    out = str(tmp_path / 'copy')
    shutil.copytree(artefact, out, symlinks=True)
    with open(osp.join(out, 'deploy.json')) as f:
        return out, json.load(f)


def write(folder, meta):
    with open(osp.join(folder, 'deploy.json'), 'w') as f:
        json.dump(meta, f)


def test_valid(copy):
    folder, meta = copy
    opened = read_meta(folder)
    assert opened['num_classes'] == 19 and len(opened['paths']) == 1
    assert all(p.startswith(folder) for p in opened['paths'])
    predictor = load_predictor(osp.join(folder, 'deploy.json'))
    assert predictor.meta['classes'] == list(META['classes'])
    assert predictor.channels == 19


@pytest.mark.parametrize('key,value,message', [
    ('files', [], "'files'"),
    ('files', ['../../other/model.onnx'], "'files.0'.*does not match"),
    ('files', ['/etc/passwd'], "'files.0'.*does not match"),
    ('model_dir', '..', "'model_dir'"),
    ('input.shape', 'abc', "'input.shape'"),
    ('input.shape', [1, 3, 0, 64], "'input.shape.2'.*minimum"),
    ('align_corners', 'no', "'align_corners'.*'boolean'"),
    ('palette', 'red', "'palette'.*'array'"),
    ('palette', [[1, 2, 3]] * 300, "'palette'.*300 entries"),
    ('palette.0', [999, 0, 0], "'palette.0.0'.*255"),
    ('palette.1', [1, 2], "'palette.1'.*too short"),
    ('classes', 'road', "'classes'.*'array'"),
    ('classes', ['road'] * 3, "'classes'.*3 entries for num_classes 19"),
    ('num_classes', 0, "'num_classes'"),
    ('preprocess.std', [1, 0, 1], "'preprocess.std.1'"),
    ('preprocess.bgr_to_rgb', 'yes', "'preprocess.bgr_to_rgb'"),
    ('precision', 'bf16', "'backend/precision': onnxruntime runs fp32"),
    ('backend', 'tensorrt', "'backend/precision': unknown backend"),
    ('files', ['model.xml'], "'files'.*onnxruntime artefacts hold"),
])
def test_invalid_values_name_the_key(copy, key, value, message):
    """Wrongly typed or out-of-range values fail when the artefact is
    opened, with an error naming deploy.json and the key."""
    folder, meta = copy
    *parents, last = key.split('.')
    target = meta
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    write(folder, meta)
    with pytest.raises(ArtefactError, match=f'deploy.json: key {message}'):
        read_meta(folder)
    with pytest.raises(ArtefactError, match='deploy.json'):
        load_predictor(folder)


def test_missing_key_and_bad_json(copy):
    folder, meta = copy
    write(folder, {k: v for k, v in meta.items() if k != 'align_corners'})
    with pytest.raises(ArtefactError, match="'align_corners' is a required"):
        read_meta(folder)
    with open(osp.join(folder, 'deploy.json'), 'w') as f:
        f.write('{')
    with pytest.raises(ArtefactError, match='deploy.json is not JSON'):
        read_meta(folder)
    os.remove(osp.join(folder, 'deploy.json'))
    with pytest.raises(FileNotFoundError, match='not an artefact'):
        load_predictor(folder)


def test_files_stay_inside(copy, tmp_path):
    """A model file that is a symlink out of the folder, or a model folder
    that is, is refused; one inside is fine."""
    folder, meta = copy
    model = read_meta(folder)['paths'][0]
    outside = tmp_path / 'outside.onnx'
    shutil.move(model, outside)
    os.symlink(outside, model)
    with pytest.raises(ArtefactError, match='points outside the artefact'):
        load_predictor(folder)
    os.remove(model)
    with pytest.raises(ArtefactError, match='is missing'):
        read_meta(folder)
    # a link that stays inside the folder is fine
    shutil.move(outside, osp.join(folder, 'elsewhere.onnx'))
    os.symlink('../elsewhere.onnx' if meta.get('model_dir') else
               'elsewhere.onnx', model)
    assert read_meta(folder)['paths'][0] == model
    if meta.get('model_dir'):  # the model folder itself linked out
        model_dir = osp.join(folder, meta['model_dir'])
        shutil.move(model_dir, tmp_path / 'dir')
        os.symlink(tmp_path / 'dir', model_dir)
        with pytest.raises(ArtefactError, match='points outside'):
            read_meta(folder)


def test_output_channels_must_match(copy):
    """A deploy.json listing 3 classes (and 3 colours) for a 19-class model
    is refused when the model is opened."""
    folder, meta = copy
    write(folder, dict(meta, num_classes=3, classes=['a', 'b', 'c'],
                       palette=[[0, 0, 0]] * 3))
    assert read_meta(folder)['num_classes'] == 3
    with pytest.raises(ArtefactError,
                       match="key 'num_classes': the model outputs 19"):
        load_predictor(folder)


def test_check_config(artefact):
    cfg = Config.fromfile(CONFIG)
    meta = read_meta(artefact)
    assert check_config(cfg, meta) == SHAPE
    other = Config.fromfile(CONFIG)
    other.model.data_preprocessor.update(
        mean=[0, 0, 0], std=[1, 1, 1], bgr_to_rgb=False)
    with pytest.raises(MismatchError, match="normalises as.*'preprocess'"):
        check_config(other, meta)
    classes = dict(meta, classes=[f'c{i}' for i in range(19)])
    with pytest.raises(MismatchError,
                       match="predicts 19 classes.*key 'classes'"):
        check_config(cfg, classes)
    square = dict(meta, input=dict(meta['input'], shape=[1, 3, 64, 64]))
    with pytest.raises(MismatchError, match="'input.shape'.*aspect ratio"):
        check_config(cfg, square)
    assert check_config(cfg, dict(meta, input=dict(shape=None))) is None


@pytest.mark.parametrize('content', [b'root:x:0:0:root:/root:/bin/bash\n',
                                     b'<?xml version="1.0"?>', b'',
                                     pickle.dumps({'not': 'torch.save'})])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / 'model.xml'
    path.write_bytes(content)
    with pytest.raises(ValueError, match='model.xml is not a checkpoint'):
        load_segmentor(CONFIG, str(path))


def test_a_new_backend_is_one_class(tmp_path):
    """A backend registered in BACKENDS shows in the tools' choices,
    exports, validates and opens with no other change (issue #21: one
    module per backend)."""
    from sanet_mmseg.deploy import (BACKENDS, PRECISIONS, Backend,
                                    artefact_backends)
    from sanet_mmseg.deploy.backends import ONNXRuntimePredictor
    from test_deploy import load_tool

    class ToyPredictor(ONNXRuntimePredictor):
        backend = 'toy'

    @BACKENDS.register_module(name='toy')
    class ToyBackend(Backend):
        name = 'toy'
        precisions = ('fp32', )
        files = ('graph.onnx', )

        def export(self, onnx_file, model_dir, precision, calib=None,
                   **options):
            self.check(precision, options)
            os.replace(onnx_file, osp.join(model_dir, 'graph.onnx'))
            return {}

        def load(self, path, precision, threads=0):
            return ToyPredictor(path, precision, threads)

    try:
        assert PRECISIONS['toy'] == ('fp32', )
        assert 'toy' in artefact_backends()
        args = load_tool('tools/deployment/export.py').parse_args(
            [CONFIG, 'none', '--backend', 'toy', '--precision', 'fp32',
             '--out-dir', str(tmp_path)])
        assert args.backend == 'toy'
        out = export_artefact(random_segmentor('s'), str(tmp_path / 'toy'),
                              'toy', 'fp32', SHAPE, META)
        predictor = load_predictor(out)
        assert predictor.name == 'toy:fp32' and predictor.channels == 19
        assert read_meta(out)['files'] == ['graph.onnx']
    finally:
        BACKENDS.module_dict.pop('toy')
    assert 'toy' not in PRECISIONS
    with pytest.raises(ArtefactError, match='unknown backend'):
        read_meta(out)
