namespace KtConnect.Engine.Kube.Config;

/// <summary>
/// A bearer token read from a file and re-read at most once per <see cref="RefreshPeriod"/>
/// (client-go's NewCachedFileTokenSource). The last successfully read value wins over the static token; a
/// failed re-read keeps the previous value, so a token being rewritten does not break requests.
/// </summary>
internal sealed class FileTokenSource
{
    public static readonly TimeSpan RefreshPeriod = TimeSpan.FromMinutes(1);

    private readonly string _path;
    private readonly string? _fallback;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _token;
    private long _nextReadTicks; // UTC ticks; 0 = never read
    private Exception? _lastError;

    public FileTokenSource(string path, string? fallbackToken, TimeProvider time)
    {
        _path = path;
        _fallback = fallbackToken;
        _time = time;
    }

    public string Path => _path;

    public async ValueTask<string> GetTokenAsync(CancellationToken cancellationToken)
    {
        if (_time.GetUtcNow().UtcTicks >= Volatile.Read(ref _nextReadTicks))
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_time.GetUtcNow().UtcTicks >= _nextReadTicks) await ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _gate.Release();
            }
        }
        return Volatile.Read(ref _token) ?? _fallback
            ?? throw new KubeCredentialException($"Cannot read the token file '{_path}': {_lastError?.Message}", _lastError, _path);
    }

    /// <summary>Re-reads now (after a 401); true when the token changed, so a retry is worth it.</summary>
    public async ValueTask<bool> RefreshAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var before = _token;
            await ReadAsync(cancellationToken).ConfigureAwait(false);
            return _token is not null && _token != before;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task ReadAsync(CancellationToken cancellationToken)
    {
        // The attempt time counts even when it fails, so a missing file is not hit on every request.
        Volatile.Write(ref _nextReadTicks, (_time.GetUtcNow() + RefreshPeriod).UtcTicks);
        try
        {
            var text = (await File.ReadAllTextAsync(_path, cancellationToken).ConfigureAwait(false)).Trim();
            if (text.Length == 0) throw new IOException("the file is empty");
            Volatile.Write(ref _token, text);
            _lastError = null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _lastError = e;
        }
    }
}
