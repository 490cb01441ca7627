// host/bench/libs/run.sh, PNG part: libpng (level 9, all filters, as kscope's encoder uses)
// on the pixels of a kscope picture. `png IN.png OUT.rgb` decodes IN to raw RGB (for the
// Swift side), then times libpng encoding those pixels: best of 20, and the file size.
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
struct sink { unsigned char *p; size_t n, cap; };
static void put(png_structp png, png_bytep d, size_t n) {
  struct sink *s = png_get_io_ptr(png);
  if (s->n + n > s->cap) { s->cap = (s->n + n) * 2; s->p = realloc(s->p, s->cap); }
  memcpy(s->p + s->n, d, n); s->n += n;
}
static void flush(png_structp png) { (void)png; }
int main(int argc, char **argv) {
  png_image img; memset(&img, 0, sizeof img); img.version = PNG_IMAGE_VERSION;
  if (argc < 3 || !png_image_begin_read_from_file(&img, argv[1])) { fprintf(stderr, "cannot read\n"); return 1; }
  img.format = PNG_FORMAT_RGB;
  unsigned char *rgb = malloc(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, NULL, rgb, 0, NULL)) { fprintf(stderr, "cannot decode\n"); return 1; }
  FILE *f = fopen(argv[2], "wb"); fwrite(rgb, 1, PNG_IMAGE_SIZE(img), f); fclose(f);
  double best = 1e9; size_t size = 0;
  for (int r = 0; r < 20; r++) {
    struct sink s = {0};
    double t = now();
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_set_write_fn(png, &s, put, flush);
    png_set_compression_level(png, 9);
    png_set_filter(png, 0, PNG_ALL_FILTERS);
    png_set_IHDR(png, info, img.width, img.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (unsigned y = 0; y < img.height; y++) png_write_row(png, rgb + (size_t)y * img.width * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    double d = now() - t; if (d < best) best = d;
    size = s.n; free(s.p);
  }
  printf("libpng encode %ux%u: best %.1f ms, %zu bytes\n", img.width, img.height, best * 1e3, size);
  return 0;
}
