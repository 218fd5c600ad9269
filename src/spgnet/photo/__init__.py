"""Your own photos (docs/design.md §11): offline keypoint detection (:mod:`.detect`),
coarse CIHP parsing from mask + skeleton (:mod:`.coarse_parsing`), the optional learned
parser and keypoints from local weights (:mod:`.learned_parsing`, :mod:`.learned_keypoints`,
both loaded by :mod:`.local_models`), photos to a dataset (:mod:`.prepare`), pose-sequence
files (:mod:`.pose_sequence`), one photo in a new pose (:mod:`.transfer`) and GIF/MP4
writing (:mod:`.animation`)."""
