# Copyright (c) sanet-mmseg contributors. All rights reserved.
"""Segment one image and save the painted prediction (MMSeg's
demo/image_demo.py for SANet). tools/predict.py is the general tool (any
number of images, folders, videos; labels, painted images, a summary);
this one runs its code (sanet_mmseg.predict) on one image with the model
as trained and paints with MMSeg's visualizer, class names included.

Large images stay within about 2 GB: where the logits at the image's size
would be large, the argmax is taken at the model's input size and the
labels are resized to the image (sanet_mmseg.inference), and the picture
is blended in bands, without class names."""
from mmengine.structures import PixelData
from mmseg.apis import init_model, show_result_pyplot
from mmseg.structures import SegDataSample

from sanet_mmseg.analysis import save_image
from sanet_mmseg.cli import tool_parser
from sanet_mmseg.deploy import TorchPredictor
from sanet_mmseg.fileio import read_image
from sanet_mmseg.painting import blend_labels
from sanet_mmseg.predict import Segmenter

# below this height or width the class names would cover the picture
MIN_SIZE_FOR_NAMES = 32
# above this many pixels MMSeg's visualizer (float64 copies of the image)
# is replaced by blend_labels, without class names
MAX_PIXELS_FOR_NAMES = 2048 * 2048


def main():
    parser = tool_parser(__doc__, ('img', 'image file'), 'config',
                         'checkpoint')
    parser.add_argument('--out-file', required=True, help='painted image')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--opacity', type=float, default=0.5,
        help='opacity of the painted segmentation, in (0, 1]')
    parser.add_argument(
        '--no-names', action='store_true',
        help='paint the classes without writing their names')
    parser.add_argument('--title', default='result')
    args = parser.parse_args()

    img = read_image(args.img)
    model = init_model(args.config, args.checkpoint, device=args.device)
    meta = dict(model.dataset_meta, align_corners=model.align_corners)
    # the model as trained (as inference_model runs it), not BN-folded
    labels = Segmenter(model.cfg, TorchPredictor(model, 'fp32'), meta)(img)
    height, width = labels.shape
    names = not args.no_names
    if names and min(height, width) < MIN_SIZE_FOR_NAMES:
        print(f'{width}x{height} image: painting the classes without their '
              'names, which would cover it')
        names = False
    if height * width > MAX_PIXELS_FOR_NAMES:
        print(f'{width}x{height} image: painting in bands, without class '
              'names')
        picture = blend_labels(img[..., ::-1], labels,
                               model.dataset_meta['palette'], args.opacity)
        save_image(picture, args.out_file)
    else:
        # MMSeg's visualizer indexes the picture with the label map (numpy:
        # a one-element tensor would act as an integer index)
        result = SegDataSample(pred_sem_seg=PixelData(data=labels[None]))
        show_result_pyplot(
            model,
            img[..., ::-1].copy(),  # RGB
            result,
            title=args.title,
            opacity=args.opacity,
            show=False,
            with_labels=names,
            out_file=args.out_file)
    print(f'saved {args.out_file}')


if __name__ == '__main__':
    main()
